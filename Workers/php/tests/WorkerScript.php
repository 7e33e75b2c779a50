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
