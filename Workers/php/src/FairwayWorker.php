<?php
/**
 * Fairway worker processes in PHP: handlers by job type, the pipe protocol hidden.
 *
 *     require 'FairwayWorker.php';
 *     use Fairway\Worker;
 *     use Fairway\PermanentError;
 *
 *     $worker = new Worker();
 *     $worker->handle('send-invoice', function (mixed $payload, Fairway\Context $context): void {
 *         if (!isset($payload['customer'])) throw new PermanentError('no customer'); // dead-lettered at once
 *         mail_invoice($payload['customer']);                                       // a throw: retried
 *     });
 *     exit($worker->run());
 *
 * PHP 8.2, no extensions beyond the CLI's (pcntl is used when present, for SIGTERM). The protocol is
 * docs/worker-protocol.md: jobs arrive on STDIN and results leave on STDOUT, so `echo` inside a handler is
 * sent to STDERR while the worker runs; Fairway logs STDERR lines with the queue and pid.
 */

declare(strict_types=1);

namespace Fairway;

const PROTOCOL = 1;
const MAX_HEADER = 1 << 20;
const MAX_BODY = 256 << 20;
const READ_SIZE = 1 << 16;
/** A job's header as Fairway writes it: plain strings (no quote, backslash or control character), whole numbers. */
const CANONICAL_JOB = '/^\{"kind":"job","id":"([^"\\\\\x00-\x1f]*)","queue":"([^"\\\\\x00-\x1f]*)"'
    . '(?:,"key":"([^"\\\\\x00-\x1f]*)")?,"jobType":"([^"\\\\\x00-\x1f]*)","attempt":(-?(?:0|[1-9]\d{0,17})),'
    . '"maxAttempts":(-?(?:0|[1-9]\d{0,17}))(?:,"timeoutSeconds":(-?(?:0|[1-9]\d{0,14})))?\}$/D';

/** Thrown by a handler for a job that can never succeed: dead-lettered at once, not retried. */
class PermanentError extends \RuntimeException {}

/** Thrown inside a handler when Fairway sends SIGTERM (the job's timeout or the drain deadline). */
final class Stopped extends \Exception {}

/** What a handler knows of its job besides the payload. */
final class Context
{
    public readonly string $id;
    public readonly string $queue;
    /** The job's fairness key (its tenant), or null. */
    public readonly ?string $key;
    public readonly string $jobType;
    public readonly int $attempt;
    public readonly int $maxAttempts;
    public readonly float $timeoutSeconds;
    /** microtime(true) value past which Fairway counts the job as timed out (INF without a timeout). */
    public readonly float $deadline;

    public function __construct(array $header)
    {
        $this->id = (string) ($header['id'] ?? '');
        $this->queue = (string) ($header['queue'] ?? '');
        $this->key = isset($header['key']) && is_string($header['key']) ? $header['key'] : null;
        $this->jobType = (string) ($header['jobType'] ?? '');
        $this->attempt = (int) ($header['attempt'] ?? 1);
        $this->maxAttempts = (int) ($header['maxAttempts'] ?? 1);
        $this->timeoutSeconds = (float) ($header['timeoutSeconds'] ?? 0);
        $this->deadline = $this->timeoutSeconds > 0 ? microtime(true) + $this->timeoutSeconds : INF;
    }

    public function remainingSeconds(): float
    {
        return max(0.0, $this->deadline - microtime(true));
    }

    public function isLastAttempt(): bool
    {
        return $this->attempt >= $this->maxAttempts;
    }
}

final class ProtocolError extends \RuntimeException {}

final class Worker
{
    /** @var array<string, callable> */
    private array $handlers = [];
    /** @var array<string, bool> Whether each job type's handler takes the Context (one is built only then). */
    private array $takesContext = [];
    private bool $running = false;
    /** The output buffer level of the diversion of handlers' output to STDERR. */
    private int $outputLevel = 0;
    /** @var resource */
    private $input;
    /** @var resource */
    private $output;
    /** What has been read from the input and not yet taken, from `$offset` on. */
    private string $buffer = '';
    private int $offset = 0;

    /**
     * `$pipeline`: how many jobs Fairway may send before this worker answers the first (they wait in the
     * pipe and run one at a time, in order); 1 turns pipelining off. Fairway uses the smaller of this and
     * the queue's `pipeline`.
     */
    public function __construct($input = null, $output = null, private readonly int $pipeline = 64)
    {
        if ($pipeline < 1) {
            throw new \InvalidArgumentException('pipeline is a whole number of jobs, at least 1');
        }
        $this->input = $input ?? STDIN;
        $this->output = $output ?? STDOUT;
    }

    /**
     * Registers `fn(mixed $payload, Context $context): void` for a job type. A handler that declares no second
     * parameter (nor a variadic one) is called with the payload alone, and no Context is built for its jobs.
     */
    public function handle(string $jobType, callable $handler): self
    {
        if ($jobType === '') {
            throw new \InvalidArgumentException('a job type is a non-empty string');
        }
        if (isset($this->handlers[$jobType])) {
            throw new \InvalidArgumentException("job type '$jobType' already has a handler");
        }
        $this->handlers[$jobType] = $handler;
        $function = new \ReflectionFunction(\Closure::fromCallable($handler));
        $this->takesContext[$jobType] = $function->isVariadic() || $function->getNumberOfParameters() >= 2;
        return $this;
    }

    /**
     * Laravel-style job classes by type: `['send-invoice' => SendInvoice::class]`. Each job builds the class
     * with the payload's fields as named constructor arguments (`new SendInvoice(invoiceId: 7)`) and calls its
     * `handle()`, passing the Context when `handle` takes a parameter. A payload that does not fit the
     * constructor is rejected, naming the class.
     *
     * @param array<string, class-string> $classes
     */
    public function jobs(array $classes): self
    {
        foreach ($classes as $jobType => $class) {
            if (!method_exists($class, 'handle')) {
                throw new \InvalidArgumentException("$class has no handle() method");
            }
            $build = static function (mixed $payload) use ($class): object {
                $arguments = is_array($payload) ? $payload : ($payload === null ? [] : [$payload]);
                try {
                    return new $class(...$arguments);
                } catch (\ArgumentCountError | \TypeError | \Error $error) {
                    if ($error instanceof \ArgumentCountError || $error instanceof \TypeError
                        || str_contains($error->getMessage(), 'Unknown named parameter')) {
                        throw new PermanentError("the payload does not fit $class: {$error->getMessage()}");
                    }
                    throw $error;
                }
            };
            // Asked once per class, not per job.
            $this->handle((string) $jobType, (new \ReflectionMethod($class, 'handle'))->getNumberOfParameters() > 0
                ? static fn (mixed $payload, Context $context): mixed => $build($payload)->handle($context)
                : static fn (mixed $payload): mixed => $build($payload)->handle());
        }
        return $this;
    }

    /** @return list<string> */
    public function jobTypes(): array
    {
        $types = array_keys($this->handlers);
        sort($types);
        return $types;
    }

    /** What descriptors 0 and 1 hold once the protocol moved off them, kept open for the programs handlers start. */
    private static array $standIns = [];

    /**
     * Moves the protocol's pipe on descriptor `$fd` (0, jobs; 1, results) to a descriptor of its own and opens
     * `$standIn` in its place, so that what a handler starts or opens cannot touch the protocol: a program
     * started with exec(), system() or proc_open() inherits descriptors 0 and 1 (one that reads stdin, as
     * ffmpeg does, would take the jobs sent ahead), and a logger writing to php://stdout (Monolog's
     * StreamHandler, a Laravel `stdout` channel) opens a copy of 1; either would otherwise write into the
     * results and end the worker for breaking the protocol. 0 gets /dev/null and 1 a copy of STDERR, and so
     * Fairway's log. php://fd/N opens a copy of the descriptor; closing the constant's stream then frees N,
     * which the next open takes. STDOUT stays closed: a handler's fwrite(STDOUT, …) fails its job with a
     * TypeError, and the worker serves on.
     *
     * @param resource $stream STDIN or STDOUT
     * @return resource the protocol's stream
     */
    private static function pipeOfItsOwn($stream, int $fd, string $standIn, string $mode)
    {
        $copy = fopen("php://fd/$fd", $mode);
        if ($copy === false) {
            return $stream;
        }
        fclose($stream);
        self::$standIns[$fd] = fopen($standIn, $mode);
        return $copy;
    }

    /** Serves jobs until Fairway closes STDIN (0) or stops a running job with SIGTERM; returns the exit code. */
    public function run(): int
    {
        if (function_exists('pcntl_async_signals')) {
            pcntl_async_signals(true);
            pcntl_signal(SIGTERM, function (): void {
                if ($this->running) {
                    throw new Stopped('SIGTERM');
                }
                exit(0);
            });
            pcntl_signal(SIGINT, SIG_IGN);
        }
        if ($this->input === STDIN) {
            $this->input = self::pipeOfItsOwn(STDIN, 0, '/dev/null', 'rb');
        }
        if ($this->output === STDOUT) {
            $this->output = self::pipeOfItsOwn(STDOUT, 1, 'php://fd/2', 'wb');
        }
        $this->send(['kind' => 'hello', 'protocol' => PROTOCOL, 'pid' => getmypid(), 'pipeline' => $this->pipeline]);
        $this->divertOutput();
        try {
            return $this->serve();
        } finally {
            if (ob_get_level() === $this->outputLevel) {
                ob_end_flush();
            }
        }
    }

    /** Runs jobs as they arrive, one at a time; returns run()'s exit code. */
    private function serve(): int
    {
        while (true) {
            try {
                $message = $this->receive();
            } catch (ProtocolError $error) {
                fwrite(STDERR, "fairway-worker: {$error->getMessage()}; exiting\n");
                return 2;
            }
            if ($message === null) {
                return 0;
            }
            [$header, $body] = $message;
            if (($header['kind'] ?? null) !== 'job') {
                fwrite(STDERR, "fairway-worker: expected a job, got " . json_encode($header['kind'] ?? null) . "; exiting\n");
                return 2;
            }
            [$outcome, $reason, $stopped] = $this->runOne($header, $body);
            $result = ['kind' => 'result', 'id' => $header['id'] ?? null, 'outcome' => $outcome];
            if ($reason !== null && $reason !== '') {
                $result['reason'] = substr($reason, 0, 4096);
            }
            $this->send($result);
            if ($stopped) {
                return 0;
            }
        }
    }

    /** @return array{string, ?string, bool} */
    private function runOne(array $header, string $body): array
    {
        $jobType = (string) ($header['jobType'] ?? '');
        $handler = $this->handlers[$jobType] ?? null;
        if ($handler === null) {
            $known = implode(', ', $this->jobTypes()) ?: 'none';
            return ['rejected', "unknown job type '$jobType' (this worker handles: $known)", false];
        }
        // Built before the payload is decoded: its deadline counts from the job's start.
        $context = $this->takesContext[$jobType] ? new Context($header) : null;
        $payload = null;
        if ($body !== '') {
            try {
                $payload = json_decode($body, true, 512, JSON_THROW_ON_ERROR);
            } catch (\JsonException $error) {
                return ['rejected', "the payload is not JSON: {$error->getMessage()}", false];
            }
        }
        $this->running = true;
        try {
            $returned = $context === null ? $handler($payload) : $handler($payload, $context);
            if ($returned instanceof \Generator) {
                // A generator function's body runs only when the generator is iterated: called, it ran none of it.
                return ['failure', 'the handler is a generator function (it yields): calling it ran none of its body; '
                    . 'return instead of yielding', false];
            }
            return ['success', null, false];
        } catch (Stopped) {
            return ['failure', "stopped by SIGTERM (the job's timeout or the drain deadline)", true];
        } catch (PermanentError $error) {
            return ['rejected', $error->getMessage() ?: 'PermanentError', false];
        } catch (\Throwable $error) {
            $class = (new \ReflectionClass($error))->getShortName();
            return ['failure', "$class: {$error->getMessage()}", false];
        } finally {
            $this->running = false;
            $this->keepOutputDiverted();
        }
    }

    /** Output inside a handler must not reach STDOUT, which carries the protocol: it goes to STDERR. */
    private function divertOutput(): void
    {
        ob_start(static function (string $text): string {
            fwrite(STDERR, $text);
            return '';
        }, 1);
        $this->outputLevel = ob_get_level();
    }

    /** Flushes the buffers a handler left open, and diverts output again if a handler ended the diversion. */
    private function keepOutputDiverted(): void
    {
        if (ob_get_level() === $this->outputLevel) {
            return;
        }
        while (ob_get_level() > $this->outputLevel && ob_end_flush()) {
        }
        if (ob_get_level() < $this->outputLevel) {
            $this->divertOutput();
        }
    }

    /**
     * Makes at least `$count` bytes past the read offset available in the buffer, reading the pipe as needed;
     * false when it closes first. One read takes whatever the pipe holds, so the jobs sent ahead arrive in
     * one call rather than four a job.
     */
    private function fill(int $count): bool
    {
        while (strlen($this->buffer) - $this->offset < $count) {
            if ($this->offset > 0) {
                $this->buffer = substr($this->buffer, $this->offset);
                $this->offset = 0;
            }
            $chunk = fread($this->input, max(READ_SIZE, $count - strlen($this->buffer)));
            if ($chunk === false || $chunk === '') {
                if (feof($this->input)) {
                    return false;
                }
                continue;
            }
            $this->buffer .= $chunk;
        }
        return true;
    }

    /** @return array{array, string}|null */
    private function receive(): ?array
    {
        // The fills are skipped while the buffer holds the whole frame, as it does for the jobs sent ahead.
        $available = strlen($this->buffer) - $this->offset;
        if ($available < 4 && !$this->fill(4)) {
            return null;
        }
        $length = unpack('N', $this->buffer, $this->offset)[1];
        if ($length > MAX_HEADER) {
            throw new ProtocolError("header of $length bytes, more than " . MAX_HEADER);
        }
        if ($available < 8 + $length && !$this->fill(8 + $length)) {
            throw new ProtocolError('the pipe closed in the middle of a message');
        }
        $raw = substr($this->buffer, $this->offset + 4, $length);
        $bodyLength = unpack('N', $this->buffer, $this->offset + 4 + $length)[1];
        if ($bodyLength > MAX_BODY) {
            throw new ProtocolError("body of $bodyLength bytes, more than " . MAX_BODY);
        }
        $start = $this->offset + 8 + $length;
        if (strlen($this->buffer) >= $start + $bodyLength) {
            $body = $bodyLength > 0 ? substr($this->buffer, $start, $bodyLength) : '';
            $this->offset = $start + $bodyLength;
        } else {
            // A body still arriving is read into a string of its own, so a large one is held once, not also in
            // the buffer.
            $body = $this->readBody(substr($this->buffer, $start), $bodyLength);
            $this->buffer = '';
            $this->offset = 0;
        }
        return [self::decodeHeader($raw), $body];
    }

    /** `$body`, the part of a body already read, completed from the pipe to `$length` bytes. */
    private function readBody(string $body, int $length): string
    {
        while (strlen($body) < $length) {
            $chunk = fread($this->input, $length - strlen($body));
            if ($chunk === false || $chunk === '') {
                if (feof($this->input)) {
                    throw new ProtocolError('the pipe closed in the middle of a body');
                }
                continue;
            }
            $body .= $chunk;
        }
        return $body;
    }

    /**
     * The header as an array. A job's header in the layout Fairway writes (its fields in order, no spaces,
     * strings without escapes, whole numbers) is matched as text, a quarter of `json_decode`'s cost; any other
     * is decoded as JSON. Both give the same array for the same bytes.
     */
    private static function decodeHeader(string $raw): array
    {
        if (preg_match(CANONICAL_JOB, $raw, $field, PREG_UNMATCHED_AS_NULL) === 1) {
            $header = ['kind' => 'job', 'id' => $field[1], 'queue' => $field[2]];
            if ($field[3] !== null) {
                $header['key'] = $field[3];
            }
            $header['jobType'] = $field[4];
            $header['attempt'] = (int) $field[5];
            $header['maxAttempts'] = (int) $field[6];
            if ($field[7] !== null) {
                $header['timeoutSeconds'] = (int) $field[7];
            }
            return $header;
        }
        try {
            $header = json_decode($raw, true, 512, JSON_THROW_ON_ERROR);
        } catch (\JsonException $error) {
            throw new ProtocolError("the header is not JSON: {$error->getMessage()}");
        }
        if (!is_array($header) || array_is_list($header) && $header !== []) {
            throw new ProtocolError('the header is not a JSON object');
        }
        return $header;
    }

    private function send(array $header, string $body = ''): void
    {
        $encoded = json_encode($header, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE);
        fwrite($this->output, pack('N', strlen($encoded)) . $encoded . pack('N', strlen($body)) . $body);
        fflush($this->output);
    }
}
