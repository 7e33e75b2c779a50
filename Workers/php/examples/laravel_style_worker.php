<?php
/**
 * A Laravel team's jobs, ported: job classes with a handle() method, dispatched by job type. Point a
 * process-isolated queue at it:
 *
 *     queues:
 *       - { name: invoices, isolation: process, command: ["php", "Workers/php/examples/laravel_style_worker.php"] }
 *
 * and enqueue `{"queue": "invoices", "type": "send-invoice", "payload": {"invoiceId": 7, "email": "a@b.c"}}`.
 */

declare(strict_types=1);

require __DIR__ . '/../src/FairwayWorker.php';

use Fairway\Context;
use Fairway\PermanentError;
use Fairway\Worker;

/** Was `class SendInvoice implements ShouldQueue` in the Laravel app; the constructor takes the payload. */
final class SendInvoice
{
    public function __construct(public int $invoiceId, public string $email, public ?string $log = null) {}

    public function handle(Context $context): void
    {
        if (!str_contains($this->email, '@')) {
            throw new PermanentError("invoice {$this->invoiceId}: '{$this->email}' is not an address");
        }
        echo "sending invoice {$this->invoiceId} to {$this->email} (attempt {$context->attempt})\n"; // to the log
        if ($this->log !== null) {
            $tenant = $context->key === null ? '' : " tenant={$context->key}";
            file_put_contents($this->log, "invoice-{$this->invoiceId} pid=" . getmypid() . "$tenant\n", FILE_APPEND);
        }
    }
}

final class GenerateReport
{
    public function __construct(public string $month) {}

    public function handle(): void
    {
        throw new \RuntimeException("report for {$this->month}: the warehouse is down");
    }
}

final class Sleep
{
    public function __construct(public int $ms = 0) {}

    public function handle(): void
    {
        if ($this->ms > 0) { // usleep(0) would still wait out the kernel's timer slack
            usleep($this->ms * 1000);
        }
    }
}

$worker = new Worker();
$worker->jobs([
    'send-invoice' => SendInvoice::class,
    'generate-report' => GenerateReport::class,
    'sleep' => Sleep::class,
]);
$worker->handle('crash', static fn () => exit(3));
// A job that shells out: `cat` reads stdin, so it must find /dev/null there, not the jobs sent ahead.
$worker->handle('spawn', static function (mixed $payload, Context $context): void {
    system('cat; echo from a child of job ' . escapeshellarg($context->id), $status);
    if ($status !== 0) {
        throw new RuntimeException("the child exited with $status");
    }
});
exit($worker->run());
