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
        $code = <<<'PHP'
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
            PHP;
        $jobs = [
            'one' => [], 'none' => [], 'two' => ['of' => 'two'], 'rest' => [], 'named' => [], 'static' => [],
            'with' => ['n' => 5], 'without' => [],
        ];
        [$status, $reasons, $stderr] = WorkerScript::reasons($code, $jobs);
        $this->assertSame(0, $status, $stderr);
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

    public function testAGeneratorHandlerFailsItsJobInsteadOfSucceedingWithItsBodyUnrun(): void
    {
        [$status, $reasons, $stderr] = WorkerScript::reasons(<<<'PHP'
            final class YieldingJob
            {
                public function handle(): \Generator { fwrite(STDERR, "ran\n"); yield 1; }
            }
            final class ReturningJob
            {
                public function handle(): int { return 7; }
            }
            $worker = new Fairway\Worker();
            $worker->handle('generator', function (mixed $payload): \Generator { fwrite(STDERR, "ran\n"); yield 1; });
            $worker->jobs(['yielding-class' => YieldingJob::class, 'returning-class' => ReturningJob::class]);
            exit($worker->run());
            PHP, ['generator' => [], 'yielding-class' => [], 'returning-class' => []]);
        $this->assertSame(0, $status, $stderr);
        $this->assertStringContainsString(
            'generator function (it yields): calling it ran none of its body', $reasons['generator']);
        $this->assertSame($reasons['generator'], $reasons['yielding-class']);
        $this->assertSame('success', $reasons['returning-class']);
        $this->assertStringNotContainsString('ran', $stderr);
    }
}
