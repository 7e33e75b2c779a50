<?php
declare(strict_types=1);

/** A worker written as a script for one test: started with the library, fed frames, its output read back. */
final class WorkerScript
{
    /**
     * Starts `php -r` with the library required and `$code` after it.
     *
     * @return array{resource, array<int, resource>} the process and its stdin, stdout and stderr pipes
     */
    public static function start(string $code): array
    {
        $library = var_export(realpath(__DIR__ . '/../src/FairwayWorker.php'), true);
        $process = proc_open(
            [PHP_BINARY, '-r', "require $library;\n" . $code],
            [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']],
            $pipes
        );
        return [$process, $pipes];
    }

    /** One frame: header length, header, body length, body. */
    public static function frame(string $header, string $body): string
    {
        return pack('N', strlen($header)) . $header . pack('N', strlen($body)) . $body;
    }

    /**
     * Runs `$code` with one job of each type in `$jobs` (its id the type, its body the payload as JSON) sent
     * ahead, then stdin closed; asserts nothing itself.
     *
     * @param array<string, mixed> $jobs
     * @return array{int, array<string, string>, string} the exit status, each job's reason (or its outcome
     *     when it has none), and stderr
     */
    public static function reasons(string $code, array $jobs): array
    {
        [$process, $pipes] = self::start($code);
        foreach ($jobs as $type => $payload) {
            $header = '{"kind":"job","id":"' . $type . '","queue":"q-' . $type . '","jobType":"' . $type
                . '","attempt":2,"maxAttempts":3}';
            fwrite($pipes[0], self::frame($header, json_encode($payload)));
        }
        fclose($pipes[0]);
        $stdout = stream_get_contents($pipes[1]);
        $stderr = stream_get_contents($pipes[2]);
        $status = proc_close($process);
        $reasons = [];
        foreach (self::headers($stdout) as $header) {
            if ($header['kind'] === 'result') {
                $reasons[$header['id']] = $header['reason'] ?? $header['outcome'];
            }
        }
        return [$status, $reasons, $stderr];
    }

    /** The headers of the frames a worker wrote, decoded, in order. */
    public static function headers(string $stdout): array
    {
        $headers = [];
        for ($offset = 0; $offset < strlen($stdout);) {
            $length = unpack('N', $stdout, $offset)[1];
            $headers[] = json_decode(substr($stdout, $offset + 4, $length), true);
            $offset += 8 + $length + unpack('N', $stdout, $offset + 4 + $length)[1];
        }
        return $headers;
    }
}
