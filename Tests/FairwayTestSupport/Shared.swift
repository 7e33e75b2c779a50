import NIOConcurrencyHelpers

/// A value shared between a test and the threads it starts (job handlers, pollers, callbacks).
public final class Shared<Value: Sendable>: Sendable {
    private let box: NIOLockedValueBox<Value>

    public init(_ value: Value) { box = NIOLockedValueBox(value) }

    public func read() -> Value { box.withLockedValue { $0 } }

    @discardableResult
    public func update<T>(_ body: (inout Value) -> T) -> T { box.withLockedValue { body(&$0) } }
}
