<?php
declare(strict_types=1);

use PHPUnit\Framework\TestCase;

require_once __DIR__ . '/WorkerScript.php';

/**
 * What a handler is called with: the Context only when it declares a second parameter (or a variadic one), so
 * that no Context is built for handlers that never look at it; job classes' handle() likewise.
 */
final class HandlerArgumentsTest extends TestCase
{
    public function testTheContextIsPassedOnlyToHandlersThatDeclareIt(): void
    {
        [$process, $pipes] = WorkerScript::start(<<<'PHP'
            use Fairway\Context;
            use Fairway\PermanentError;

            function payloadOnly(mixed $payload): void { throw new PermanentError('arguments ' . func_num_args()); }
            final class Handlers
            {
                public static function withContext(mixed $payload, Context $context): void
                {
                    throw new PermanentError("static {$context->jobType}");
                }
            }
            final class WithContext
            {
                public function __construct(public int $n) {}
                public function handle(Context $context): void
                {
                    throw new PermanentError("class {$context->id} n={$this->n}");
                }
            }
            final class WithoutContext
            {
                public function handle(): void { throw new PermanentError('class arguments ' . func_num_args()); }
            }

            $worker = new Fairway\Worker();
            $worker->handle('one', function (mixed $payload): void {
                throw new PermanentError('arguments ' . func_num_args());
            });
            $worker->handle('none', fn () => throw new PermanentError('arguments ' . func_num_args()));
            $worker->handle('two', function (mixed $payload, Context $context): void {
                throw new PermanentError("context {$context->id} attempt {$context->attempt} of {$payload['of']}");
            });
            $worker->handle('rest', function (mixed ...$arguments): void {
                throw new PermanentError('rest ' . $arguments[1]->queue);
            });
            $worker->handle('named', 'payloadOnly');
            $worker->handle('static', [Handlers::class, 'withContext']);
            $worker->jobs(['with' => WithContext::class, 'without' => WithoutContext::class]);
            exit($worker->run());
            PHP);
        $jobs = [
            'one' => [], 'none' => [], 'two' => ['of' => 'two'], 'rest' => [], 'named' => [], 'static' => [],
            'with' => ['n' => 5], 'without' => [],
        ];
        foreach ($jobs as $type => $payload) {
            $header = '{"kind":"job","id":"' . $type . '","queue":"q-' . $type . '","jobType":"' . $type
                . '","attempt":2,"maxAttempts":3}';
            $body = json_encode($payload);
            fwrite($pipes[0], WorkerScript::frame($header, $body));
        }
        fclose($pipes[0]);
        $stdout = stream_get_contents($pipes[1]);
        $stderr = stream_get_contents($pipes[2]);
        $this->assertSame(0, proc_close($process), $stderr);
        $reasons = [];
        foreach (WorkerScript::headers($stdout) as $header) {
            if ($header['kind'] === 'result') {
                $reasons[$header['id']] = $header['reason'] ?? $header['outcome'];
            }
        }
        $this->assertSame([
            'one' => 'arguments 1',
            'none' => 'arguments 1',
            'two' => 'context two attempt 2 of two',
            'rest' => 'rest q-rest',
            'named' => 'arguments 1',
            'static' => 'static static',
            'with' => 'class with n=5',
            'without' => 'class arguments 0',
        ], $reasons, $stderr);
    }
}
