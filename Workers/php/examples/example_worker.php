<?php
/**
 * A worker built on FairwayWorker.php: the job types Fairway's tests and the docs use (the same as the
 * Python and Node examples).
 *
 *     queues:
 *       - { name: reports, isolation: process, command: ["php", "Workers/php/examples/example_worker.php"] }
 */

declare(strict_types=1);

require __DIR__ . '/../src/FairwayWorker.php';

use Fairway\Context;
use Fairway\PermanentError;
use Fairway\Worker;

$worker = new Worker();
$worker->handle('append', static function (mixed $payload, Context $context): void {
    if (!is_array($payload) || !isset($payload['path'], $payload['line'])) {
        throw new PermanentError("append: the payload needs 'path' and 'line'");
    }
    $key = $context->key === null ? '' : " key={$context->key}";
    file_put_contents($payload['path'], "{$payload['line']} pid=" . getmypid() . " attempt={$context->attempt}{$key}\n", FILE_APPEND);
});
// usleep(0) still waits out the kernel's timer slack (about 0.1 ms here): a 0 ms sleep returns at once.
$worker->handle('sleep', static function (mixed $payload): void {
    $microseconds = (int) (($payload['ms'] ?? 0) * 1000);
    if ($microseconds > 0) {
        usleep($microseconds);
    }
});
$worker->handle('fail', static function (mixed $payload): void {
    $message = $payload['message'] ?? 'failed on purpose';
    echo "failing on purpose: $message\n"; // to stderr: stdout is the protocol's
    throw new RuntimeException($message);
});
$worker->handle('reject', static fn (mixed $payload) => throw new PermanentError($payload['message'] ?? 'rejected on purpose'));
$worker->handle('crash', static fn () => exit(3));
$worker->handle('echo-size', static fn (mixed $payload) => throw new PermanentError('size ' . strlen((string) ($payload['data'] ?? ''))));
exit($worker->run());
