<?php
declare(strict_types=1);

use PHPUnit\Framework\TestCase;

/** The library against a real worker process (the Laravel-style example), spoken to over its pipes. */
final class WorkerTest extends TestCase
{
    /** @var resource */
    private $process;
    private array $pipes = [];

    protected function setUp(): void
    {
        $this->process = proc_open(
            [PHP_BINARY, __DIR__ . '/../examples/laravel_style_worker.php'],
            [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']],
            $this->pipes
        );
        stream_set_blocking($this->pipes[2], false);
    }

    protected function tearDown(): void
    {
        $status = proc_get_status($this->process);
        if ($status['running']) {
            proc_terminate($this->process, 9);
        }
        foreach ($this->pipes as $pipe) {
            if (is_resource($pipe)) {
                fclose($pipe);
            }
        }
        proc_close($this->process);
    }

    private function send(array $header, string $body = ''): void
    {
        $encoded = json_encode($header);
        fwrite($this->pipes[0], pack('N', strlen($encoded)) . $encoded . pack('N', strlen($body)) . $body);
        fflush($this->pipes[0]);
    }

    private function receive(): array
    {
        $length = unpack('N', $this->read(4))[1];
        $header = json_decode($this->read($length), true);
        $bodyLength = unpack('N', $this->read(4))[1];
        if ($bodyLength > 0) {
            $this->read($bodyLength);
        }
        return $header;
    }

    private function read(int $count): string
    {
        $data = '';
        while (strlen($data) < $count) {
            $ready = [$this->pipes[1]];
            $none = null;
            if (stream_select($ready, $none, $none, 30) === 0) {
                $this->fail('the worker sent nothing for 30 s');
            }
            $chunk = fread($this->pipes[1], $count - strlen($data));
            if ($chunk === '' || $chunk === false) {
                $this->assertFalse(feof($this->pipes[1]), 'the worker closed its stdout');
                continue;
            }
            $data .= $chunk;
        }
        return $data;
    }

    private function job(
        string $type, mixed $payload, string $id = '1', float $timeout = 30, int $attempt = 1, ?string $key = null
    ): array {
        $body = is_string($payload) ? $payload : json_encode($payload);
        $header = ['kind' => 'job', 'id' => $id, 'queue' => 'q', 'jobType' => $type, 'attempt' => $attempt,
            'maxAttempts' => 3, 'timeoutSeconds' => $timeout];
        if ($key !== null) {
            $header['key'] = $key;
        }
        $this->send($header, $body);
        return $this->receive();
    }

    private function waitForExit(): int
    {
        for ($i = 0; $i < 500; $i++) {
            $status = proc_get_status($this->process);
            if (!$status['running']) {
                return $status['exitcode'];
            }
            usleep(10000);
        }
        $this->fail('the worker did not exit');
    }

    private function stderr(): string
    {
        return (string) stream_get_contents($this->pipes[2]);
    }

    public function testHelloThenAJobClassRunsWithItsContextAndEchoGoesToStderr(): void
    {
        $pid = proc_get_status($this->process)['pid'];
        $this->assertSame(['kind' => 'hello', 'protocol' => 1, 'pid' => $pid, 'pipeline' => 64], $this->receive());
        $log = tempnam(sys_get_temp_dir(), 'fw-php-');
        $result = $this->job('send-invoice', ['invoiceId' => 7, 'email' => 'ann@example.com', 'log' => $log], '7', 30, 2);
        $this->assertSame(['kind' => 'result', 'id' => '7', 'outcome' => 'success'], $result);
        $this->assertSame("invoice-7 pid=$pid\n", file_get_contents($log));
        usleep(100000);
        $this->assertStringContainsString('sending invoice 7 to ann@example.com (attempt 2)', $this->stderr());
        fclose($this->pipes[0]);
        $this->assertSame(0, $this->waitForExit(), 'stdin closed: exit 0');
    }

    public function testTheFairnessKeyReachesTheJob(): void
    {
        $pid = proc_get_status($this->process)['pid'];
        $this->receive();
        $log = tempnam(sys_get_temp_dir(), 'fw-php-');
        $this->job('send-invoice', ['invoiceId' => 8, 'email' => 'bo@example.com', 'log' => $log], '8', 30, 1, 'acme');
        $this->job('send-invoice', ['invoiceId' => 9, 'email' => 'cy@example.com', 'log' => $log], '9');
        $this->assertSame("invoice-8 pid=$pid tenant=acme\ninvoice-9 pid=$pid\n", file_get_contents($log));
    }

    public function testJobsSentAheadRunOneAtATimeInOrder(): void
    {
        $this->receive();
        $jobs = [['sleep', ['ms' => 30]], ['generate-report', ['month' => '2026-11']], ['sleep', ['ms' => 0]]];
        foreach ($jobs as $index => [$type, $payload]) {
            $this->send(['kind' => 'job', 'id' => "p$index", 'queue' => 'q', 'jobType' => $type, 'attempt' => 1,
                'maxAttempts' => 3, 'timeoutSeconds' => 30], json_encode($payload));
        }
        $results = array_map(fn () => $this->receive(), $jobs);
        $this->assertSame([['p0', 'success'], ['p1', 'failure'], ['p2', 'success']],
            array_map(fn (array $result) => [$result['id'], $result['outcome']], $results));
        fclose($this->pipes[0]);
        $this->assertSame(0, $this->waitForExit());
    }

    public function testAThrowIsAFailureAndTheWorkerKeepsServing(): void
    {
        $this->receive();
        $result = $this->job('generate-report', ['month' => '2026-11']);
        $this->assertSame('failure', $result['outcome']);
        $this->assertSame('RuntimeException: report for 2026-11: the warehouse is down', $result['reason']);
        $this->assertSame('success', $this->job('sleep', ['ms' => 1], '2')['outcome']);
    }

    public function testPermanentErrorUnknownTypeBadJsonAndAPayloadThatDoesNotFitAreRejected(): void
    {
        $this->receive();
        $permanent = $this->job('send-invoice', ['invoiceId' => 1, 'email' => 'nobody']);
        $this->assertSame(['kind' => 'result', 'id' => '1', 'outcome' => 'rejected',
            'reason' => "invoice 1: 'nobody' is not an address"], $permanent);
        $unknown = $this->job('resize', []);
        $this->assertSame('rejected', $unknown['outcome']);
        $this->assertStringContainsString("unknown job type 'resize' (this worker handles: crash, generate-report", $unknown['reason']);
        $bad = $this->job('sleep', '{not json');
        $this->assertSame('rejected', $bad['outcome']);
        $this->assertStringContainsString('not JSON', $bad['reason']);
        $misfit = $this->job('send-invoice', ['invoice' => 1]);
        $this->assertSame('rejected', $misfit['outcome']);
        $this->assertStringContainsString('the payload does not fit SendInvoice', $misfit['reason']);
    }

    public function testSigtermStopsTheRunningJobAndTheWorkerExits(): void
    {
        $this->receive();
        $this->send(['kind' => 'job', 'id' => '9', 'queue' => 'q', 'jobType' => 'sleep', 'attempt' => 1,
            'maxAttempts' => 1, 'timeoutSeconds' => 0.1], '{"ms": 20000}');
        usleep(300000);
        $started = microtime(true);
        proc_terminate($this->process, 15);
        $result = $this->receive();
        $this->assertSame('failure', $result['outcome']);
        $this->assertStringContainsString('SIGTERM', $result['reason']);
        $this->assertSame(0, $this->waitForExit());
        $this->assertLessThan(2.0, microtime(true) - $started);
    }

    public function testALargeBodyArrivesWholeAndACrashIsTheProcessEnding(): void
    {
        $this->receive();
        $result = $this->job('send-invoice', ['invoiceId' => 3, 'email' => str_repeat('x', 8 << 20)]);
        $this->assertSame('rejected', $result['outcome'], 'no @ in 8 MB of x: the whole body arrived and was read');
        $this->send(['kind' => 'job', 'id' => '2', 'queue' => 'q', 'jobType' => 'crash', 'attempt' => 1,
            'maxAttempts' => 1, 'timeoutSeconds' => 5]);
        $this->assertSame(3, $this->waitForExit());
    }

    public function testAProgramAJobStartsCannotTakeTheJobsSentAhead(): void
    {
        $this->receive(); // hello
        $this->send(['kind' => 'job', 'id' => '1', 'queue' => 'q', 'jobType' => 'spawn', 'attempt' => 1,
            'maxAttempts' => 1, 'timeoutSeconds' => 10], '{}');
        $this->send(['kind' => 'job', 'id' => '2', 'queue' => 'q', 'jobType' => 'sleep', 'attempt' => 1,
            'maxAttempts' => 1, 'timeoutSeconds' => 10], '{"ms":0}');
        $this->assertSame(['kind' => 'result', 'id' => '1', 'outcome' => 'success'], $this->receive());
        $this->assertSame(['kind' => 'result', 'id' => '2', 'outcome' => 'success'], $this->receive());
        fclose($this->pipes[0]);
        $this->assertSame(0, $this->waitForExit());
        $this->assertStringContainsString('from a child of job 1', $this->stderr());
    }

    public function testAMalformedFrameEndsTheWorkerWithAMessage(): void
    {
        $this->receive();
        fwrite($this->pipes[0], pack('N', 5) . 'nope!' . pack('N', 0));
        fflush($this->pipes[0]);
        $this->assertSame(2, $this->waitForExit());
        $this->assertStringContainsString('not JSON', $this->stderr());
    }
}
