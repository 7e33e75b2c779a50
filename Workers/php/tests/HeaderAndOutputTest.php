<?php
declare(strict_types=1);

use PHPUnit\Framework\TestCase;

require_once __DIR__ . '/WorkerScript.php';

/** How the library reads a job's header, and where a handler's output goes whatever the handler does to it. */
final class HeaderAndOutputTest extends TestCase
{
    private static function decode(string $raw): array
    {
        $method = new ReflectionMethod(Fairway\Worker::class, 'decodeHeader');
        return $method->invoke(null, $raw);
    }

    /** A string as Fairway's header writer puts it: quotes, backslashes and control characters escaped. */
    private static function quoted(string $text): string
    {
        return json_encode($text, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
    }

    /** Text of the characters Fairway writes as they are, and in one string of four those it escapes. */
    private static function randomText(): string
    {
        $pieces = ['a', 'Z', '7', '-', ' ', '/', 'é', '東', '.', ':'];
        if (mt_rand(0, 3) === 0) {
            $pieces = [...$pieces, '"', '\\', "\n", "\x01"];
        }
        $text = '';
        for ($i = mt_rand(0, 6); $i > 0; $i--) {
            $text .= $pieces[mt_rand(0, count($pieces) - 1)];
        }
        return $text;
    }

    /**
     * Headers in Fairway's layout, with every kind of string and number it writes, are read exactly as
     * json_decode reads them; the plain ones (no escapes, whole numbers) by the text match, the rest by
     * json_decode, so both paths are covered.
     */
    public function testJobHeadersInFairwaysLayoutAreReadAsJsonDecodeReadsThem(): void
    {
        mt_srand(13);
        $matched = 0;
        $decoded = 0;
        for ($round = 0; $round < 3000; $round++) {
            $raw = '{"kind":"job","id":' . self::quoted(self::randomText())
                . ',"queue":' . self::quoted(self::randomText());
            if (mt_rand(0, 2) === 0) {
                $raw .= ',"key":' . self::quoted(self::randomText());
            }
            $raw .= ',"jobType":' . self::quoted(self::randomText())
                . ',"attempt":' . [0, 1, 7, 2 ** 40, -3][mt_rand(0, 4)]
                . ',"maxAttempts":' . [1, 25, PHP_INT_MAX][mt_rand(0, 2)];
            $timeout = mt_rand(0, 3);
            if ($timeout > 0) {
                $raw .= ',"timeoutSeconds":' . ['30', '0.25', '1e3'][$timeout - 1];
            }
            $raw .= '}';
            $this->assertSame(json_decode($raw, true), self::decode($raw), $raw);
            preg_match(Fairway\CANONICAL_JOB, $raw) === 1 ? $matched++ : $decoded++;
        }
        $this->assertGreaterThan(300, $matched, 'plain headers take the text match');
        $this->assertGreaterThan(300, $decoded, 'the others take json_decode');
    }

    /** Text that is not JSON is refused by both paths: the match does not take what json_decode would refuse. */
    public function testNearMissesAreLeftToJsonDecodeAndItsErrors(): void
    {
        $plain = '{"kind":"job","id":"1","queue":"q","jobType":"t","attempt":1,"maxAttempts":3,"timeoutSeconds":30}';
        $this->assertSame(1, preg_match(Fairway\CANONICAL_JOB, $plain));
        $this->assertSame(json_decode($plain, true), self::decode($plain));
        $spaced = str_replace(',', ', ', $plain);
        $this->assertSame(json_decode($spaced, true), self::decode($spaced));
        $reordered = '{"kind":"job","queue":"q","id":"1","jobType":"t","attempt":1,"maxAttempts":3}';
        $this->assertSame(json_decode($reordered, true), self::decode($reordered));
        foreach (['"attempt":01', '"attempt":1e', '"attempt":-'] as $bad) {
            $text = str_replace('"attempt":1', $bad, $plain);
            try {
                self::decode($text);
                $this->fail("read $text");
            } catch (Fairway\ProtocolError $error) {
                $this->assertStringContainsString('not JSON', $error->getMessage());
            }
        }
        $trailing = $plain . "\n";
        $this->assertSame(0, preg_match(Fairway\CANONICAL_JOB, $trailing), 'no newline after the closing brace');
    }

    /** Frames that arrive a byte at a time, split anywhere (lengths, header, body), are read whole and in order. */
    public function testFramesSplitAnywhereAreReadWhole(): void
    {
        [$process, $pipes] = WorkerScript::start(<<<'PHP'
            $worker = new Fairway\Worker();
            $worker->handle('say', function (mixed $payload): void { echo $payload['text'], "\n"; });
            exit($worker->run());
            PHP);
        $bytes = '';
        foreach (['one', str_repeat('x', 300), 'three'] as $index => $text) {
            $header = '{"kind":"job","id":"' . $index . '","queue":"q","jobType":"say","attempt":1,"maxAttempts":1}';
            $body = json_encode(['text' => $text]);
            $bytes .= WorkerScript::frame($header, $body);
        }
        foreach (str_split($bytes) as $index => $byte) {
            fwrite($pipes[0], $byte);
            fflush($pipes[0]);
            if ($index % 7 === 0) {
                usleep(200);
            }
        }
        fclose($pipes[0]);
        $stdout = stream_get_contents($pipes[1]);
        $stderr = stream_get_contents($pipes[2]);
        $this->assertSame(0, proc_close($process), $stderr);
        $this->assertSame("one\n" . str_repeat('x', 300) . "\nthree\n", $stderr);
        $this->assertSame(3, substr_count($stdout, '"outcome":"success"'), $stdout);
    }

    /** A large body is held once while its job runs (and once more as the decoded payload), not also in a buffer. */
    public function testALargeBodyIsHeldOnce(): void
    {
        [$process, $pipes] = WorkerScript::start(<<<'PHP'
            $worker = new Fairway\Worker();
            $worker->handle('peak', function (): void {
                throw new Fairway\PermanentError((string) memory_get_peak_usage());
            });
            exit($worker->run());
            PHP);
        $size = 16 << 20;
        $header = '{"kind":"job","id":"1","queue":"q","jobType":"peak","attempt":1,"maxAttempts":1}';
        $body = json_encode(['data' => str_repeat('x', $size)]);
        fwrite($pipes[0], WorkerScript::frame($header, $body));
        fclose($pipes[0]);
        $stdout = stream_get_contents($pipes[1]);
        $stderr = stream_get_contents($pipes[2]);
        $this->assertSame(0, proc_close($process), $stderr);
        $this->assertSame(1, preg_match('/"reason":"(\d+)"/', $stdout, $peak), $stdout);
        $this->assertLessThan(2.5 * $size, (int) $peak[1], 'the body and its decoded payload, and little more');
    }

    /**
     * A handler that ends the library's output buffer, or opens one and leaves it, costs at most its own
     * output: the next jobs' `echo` still goes to stderr, and stdout carries only results.
     */
    public function testOutputStaysOffStdoutWhateverAHandlerDoesToOutputBuffers(): void
    {
        [$process, $pipes] = WorkerScript::start(<<<'PHP'
            $worker = new Fairway\Worker();
            $worker->handle('say', function (mixed $payload): void { echo $payload['text'], "\n"; });
            $worker->handle('close', function (): void { ob_end_clean(); });
            $worker->handle('open', function (): void { ob_start(); echo "left in a buffer\n"; });
            exit($worker->run());
            PHP);
        $jobs = [['say', 'one'], ['close', ''], ['say', 'two'], ['open', ''], ['say', 'three']];
        foreach ($jobs as $index => [$type, $text]) {
            $header = '{"kind":"job","id":"' . $index . '","queue":"q","jobType":"' . $type
                . '","attempt":1,"maxAttempts":1,"timeoutSeconds":10}';
            $body = json_encode(['text' => $text]);
            fwrite($pipes[0], WorkerScript::frame($header, $body));
        }
        fclose($pipes[0]);
        $stdout = stream_get_contents($pipes[1]);
        $stderr = stream_get_contents($pipes[2]);
        $this->assertSame(0, proc_close($process), $stderr);
        $headers = WorkerScript::headers($stdout);
        $this->assertSame('hello', $headers[0]['kind'] ?? null, $stdout);
        $this->assertSame(
            ['0 success', '1 success', '2 success', '3 success', '4 success'],
            array_map(fn (array $result) => "{$result['id']} {$result['outcome']}", array_slice($headers, 1)),
            $stdout
        );
        $this->assertSame("one\ntwo\nleft in a buffer\nthree\n", $stderr);
    }

    /**
     * A logger writing to php://stdout (as Monolog's StreamHandler does) and a program started with the
     * worker's own descriptors write to stderr, not into the results; fwrite(STDOUT) fails its job alone.
     */
    public function testNeitherALoggerOnPhpStdoutNorAProgramAJobStartsCanWriteIntoTheResults(): void
    {
        [$process, $pipes] = WorkerScript::start(<<<'PHP'
            $worker = new Fairway\Worker();
            $worker->handle('log', function (): void {
                $log = fopen('php://stdout', 'w');
                fwrite($log, "logged to php://stdout\n");
                fclose($log);
            });
            $worker->handle('child', function (): void {
                proc_close(proc_open(['sh', '-c', 'echo from a program the job started'], [], $pipes));
            });
            $worker->handle('stdout', function (): void { fwrite(STDOUT, "straight to STDOUT\n"); });
            $worker->handle('say', function (): void { echo "still here\n"; });
            exit($worker->run());
            PHP);
        foreach (['log', 'child', 'stdout', 'say'] as $index => $type) {
            $header = '{"kind":"job","id":"' . $index . '","queue":"q","jobType":"' . $type
                . '","attempt":1,"maxAttempts":1,"timeoutSeconds":10}';
            fwrite($pipes[0], WorkerScript::frame($header, ''));
        }
        fclose($pipes[0]);
        $stdout = stream_get_contents($pipes[1]);
        $stderr = stream_get_contents($pipes[2]);
        $this->assertSame(0, proc_close($process), $stderr);
        $results = array_map(
            fn (array $result) => "{$result['id']} {$result['outcome']} " . ($result['reason'] ?? ''),
            array_slice(WorkerScript::headers($stdout), 1)
        );
        $this->assertSame(
            [
                '0 success ',
                '1 success ',
                '2 failure TypeError: fwrite(): supplied resource is not a valid stream resource',
                '3 success ',
            ],
            $results,
            $stdout
        );
        $this->assertSame("logged to php://stdout\nfrom a program the job started\nstill here\n", $stderr);
    }
}
