import CRabbitMQ
import FairwayJobs
import FairwayRuntime
import FairwayTestSupport
import Foundation
import Logging
import NIOConcurrencyHelpers
import PropertyBased
import Testing

@testable import FairwayAMQP

/// Message properties and headers are a producer's, and untrusted: messages with random properties and
/// headers of every field kind (Fairway's own header names among them, with forged values) go through the
/// real broker into the AMQP source. Each ends as a run or a dead letter with its reason; none is lost,
/// none runs at an attempt outside 1...attempts, and the process survives.
@Suite("AMQP message fuzzing (property-based)", .serialized, .usesBroker)
struct MessageFuzzTests {
    init() throws {
        try #require(Broker.ready, "the RabbitMQ broker could not be started")
    }

    @Test("random properties and headers of every kind: every message runs or is dead-lettered with a reason")
    func fuzzedMessages() async throws {
        let published = NIOLockedValueBox(0)
        await propertyCheck(count: 20, input: Gen.uint64()) { seed in
            let names = TestQueues()
            let queue = names.name("fuzz")
            let attempts = NIOLockedValueBox<[Int]>([])
            let messages = CapturingLogHandler.Messages()
            let harness = try! AMQPHarness(
                // Keyed, with a cap per key: fuzzed x-fairway-key headers take the keyed path.
                queues: [QueueDefinition(name: queue, retry: quickRetry(3), keys: KeyFairness(concurrency: 2))],
                logger: Logger(label: "fuzz") { _ in CapturingLogHandler(sink: messages) },
                register: { registry in
                    registry.register(JobName<NoParameters>("ok")) { _, context in
                        attempts.withLockedValue { $0.append(context.attempt) }
                    }
                })
            let count = 50
            let publisher = try! RawPublisher()
            defer { publisher.close() }
            var fuzzer = MessageFuzzer(seed: seed)
            try! publisher.declare(queue)
            for index in 0..<count {
                let message = fuzzer.message()
                do {
                    try publisher.publish(to: queue, message)
                } catch {
                    Issue.record("seed \(seed): message \(index) could not be sent: \(error)")
                }
            }
            // The count a declare reports lags the publishes a little: wait for all of them.
            try! publisher.declare(queue)
            #expect(
                eventually { (try? Broker.count(queue)) == count },
                "seed \(seed): the broker took \((try? Broker.count(queue)) ?? -1) of \(count) messages")
            try! harness.engine.start()
            defer { harness.engine.shutdown(drainTimeout: .seconds(5)) }
            let settled = eventually(timeout: 30) {
                let dead = (try? Broker.count(queue + ".dead")) ?? 0
                return harness.snapshot(queue).succeeded + dead == count && (try? Broker.count(queue)) == 0
            }
            let dead = (try? Broker.count(queue + ".dead")) ?? 0
            #expect(
                settled,
                "seed \(seed): \(harness.snapshot(queue).succeeded) ran, \(dead) dead of \(count); log: \(messages.all.suffix(3))"
            )
            let seen = attempts.withLockedValue { $0 }
            #expect(seen.allSatisfy { (1...3).contains($0) }, "seed \(seed): attempts \(seen)")
            let letters = dead > 0 ? try! Broker.drain(queue + ".dead") : []
            #expect(letters.allSatisfy { !($0.reason ?? "").isEmpty }, "seed \(seed): a dead letter without a reason")
            published.withLockedValue { $0 += count }
        }
        print("AMQP message fuzzing: \(published.withLockedValue { $0 }) messages with fuzzed properties and headers")
        #expect(published.withLockedValue { $0 } == 1000)
    }

    @Test(
        "a forged x-fairway-attempt skips no retry and makes no reason lie: unsigned, mis-signed or out of range",
        arguments: [
            ("huge", FieldValue.i64(4_611_686_018_427_387_904), nil),
            ("unsigned in range", .i64(2), nil),
            ("wrong signature", .i64(2), String(repeating: "ab", count: 32)),
            ("text", .utf8(Array("2".utf8)), nil),
            ("negative", .i32(-5), nil),
            ("max", .i64(.max), nil),
        ] as [(String, FieldValue, String?)])
    func forgedAttempt(_ name: String, _ value: FieldValue, _ signature: String?) throws {
        let names = TestQueues()
        let queue = names.name("forged")
        let seen = NIOLockedValueBox<[Int]>([])
        let harness = try AMQPHarness(
            queues: [QueueDefinition(name: queue, retry: quickRetry(3))],
            register: { registry in
                registry.register(JobName<NoParameters>("counted")) { _, context in
                    seen.withLockedValue { $0.append(context.attempt) }
                    throw JobError.permanent("stop here")
                }
            })
        let publisher = try RawPublisher()
        defer { publisher.close() }
        try publisher.declare(queue)
        var headers: [(String, FieldValue)] = [("x-fairway-attempt", value)]
        if let signature { headers.append(("x-fairway-attempt-signature", .utf8(Array(signature.utf8)))) }
        var message = FuzzedMessage(headers: headers, body: Array("{}".utf8))
        message.type = Array("counted".utf8)
        try publisher.publish(to: queue, message)
        try harness.engine.start()
        defer { harness.engine.shutdown(drainTimeout: .seconds(5)) }
        #expect(eventually { (try? Broker.count(queue + ".dead")) == 1 }, "\(name)")
        #expect(seen.withLockedValue { $0 } == [1], "\(name): the forged count was believed")
        let letter = try #require(try Broker.drain(queue + ".dead").first)
        #expect(
            letter.reason == "stop here" && letter.attempts == 1,
            "\(name): \(letter.reason ?? "") \(letter.attempts ?? -1)")
    }

    @Test("a message rabbitmq-c cannot decode holds back its own queue only, and is not lost")
    func undecodableMessage() throws {
        let names = TestQueues()
        let stuck = names.name("stuck")
        let flowing = names.name("flowing")
        let messages = CapturingLogHandler.Messages()
        let harness = try AMQPHarness(
            queues: [QueueDefinition(name: stuck), QueueDefinition(name: flowing)],
            logger: Logger(label: "fuzz") { _ in CapturingLogHandler(sink: messages) })
        let publisher = try RawPublisher()
        defer { publisher.close() }
        try publisher.declare(stuck)
        try publisher.declare(flowing)
        // A header table with an empty key: valid AMQP, taken by the broker, refused by rabbitmq-c 0.11.
        var poison = FuzzedMessage(headers: [("", .i8(1))], body: Array("{}".utf8))
        poison.type = Array("noop".utf8)
        try publisher.publish(to: stuck, poison)
        var good = FuzzedMessage(headers: [], body: Array("{}".utf8))
        good.type = Array("noop".utf8)
        for _ in 0..<20 {
            try publisher.publish(to: flowing, good)
            try publisher.publish(to: stuck, good)
        }
        try publisher.declare(flowing)
        try harness.engine.start()
        defer { harness.engine.shutdown(drainTimeout: .seconds(5)) }
        #expect(eventually(timeout: 20) { harness.snapshot(flowing).succeeded == 20 }, "\(messages.all.suffix(5))")
        let held = messages.all.filter { $0.contains("cannot be decoded") }
        #expect(held.contains { $0.contains(stuck) }, "the log names the queue: \(messages.all.suffix(5))")
        #expect(harness.snapshot(stuck).succeeded == 0, "the stuck queue waits behind its head message")
        harness.engine.shutdown(drainTimeout: .seconds(5))
        #expect(try publisher.declare(stuck) == 21, "nothing was lost: the message is still at the head of its queue")
    }
}

/// One message as a producer might send it: random properties, a random header table, a body.
struct FuzzedMessage {
    var type: [UInt8]?
    var messageID: [UInt8]?
    var timestamp: UInt64?
    var priority: UInt8?
    var contentType: [UInt8]?
    var correlationID: [UInt8]?
    var headers: [(String, FieldValue)]
    var body: [UInt8]

    init(headers: [(String, FieldValue)], body: [UInt8]) {
        self.headers = headers
        self.body = body
    }
}

/// A header value of any AMQP field kind.
indirect enum FieldValue {
    case bool(Bool)
    case i8(Int8)
    case u8(UInt8)
    case i16(Int16)
    case u16(UInt16)
    case i32(Int32)
    case u32(UInt32)
    case i64(Int64)
    case f32(Float)
    case f64(Double)
    case decimal(UInt8, UInt32)
    case utf8([UInt8])
    case bytes([UInt8])
    case timestamp(UInt64)
    case void
    case array([FieldValue])
    case table([(String, FieldValue)])
}

struct MessageFuzzer {
    private var random: SplitMix64

    init(seed: UInt64) { random = SplitMix64(seed: seed) }

    static let names = [
        "x-fairway-attempt", "x-fairway-attempts", "x-fairway-last-error", "x-fairway-reason", "x-fairway-queue",
        "x-fairway-key", "x-delivery-count", "x-death", "x-first-death-reason", "x",
    ]

    mutating func message() -> FuzzedMessage {
        var message = FuzzedMessage(headers: [], body: [])
        switch random.below(4) {
        case 0: message.type = nil
        case 1: message.type = random.bytes(random.below(256))  // a short string: 255 bytes at most
        default: message.type = Array(random.pick(["ok", "ok", "ok", "noop", "sleep", "fail", "", "nope"]).utf8)
        }
        if present() { message.messageID = random.bytes(random.below(256)) }
        if present() {
            message.timestamp = random.pick([
                0, 1, UInt64.max, 1 << 63, 18_446_744_073, 18_446_744_074, 1_700_000_000, random.next(),
            ])
        }
        if present() { message.priority = UInt8(truncatingIfNeeded: random.next()) }
        if present() { message.contentType = random.bytes(random.below(40)) }
        if present() { message.correlationID = random.bytes(random.below(40)) }
        for _ in 0..<random.below(6) {
            let name = random.pick(Self.names)
            message.headers.append((name, value(depth: 0)))
        }
        let noise = random.bytes(20)
        message.body = random.pick([
            Array("{}".utf8), Array(#"{"ms":1}"#.utf8), Array(#"{"ms":1e308}"#.utf8), [], noise, Array("[[[[".utf8),
            Array(#"{"message":"x"}"#.utf8),
        ])
        return message
    }

    private mutating func present() -> Bool { random.below(3) != 0 }

    mutating func value(depth: Int) -> FieldValue {
        switch random.below(depth > 1 ? 15 : 17) {
        case 0: return .bool(random.below(2) == 0)
        case 1: return .i8(Int8(truncatingIfNeeded: random.next()))
        case 2: return .u8(UInt8(truncatingIfNeeded: random.next()))
        case 3: return .i16(Int16(truncatingIfNeeded: random.next()))
        case 4: return .u16(UInt16(truncatingIfNeeded: random.next()))
        case 5: return .i32(Int32(truncatingIfNeeded: random.next()))
        case 6: return .u32(UInt32(truncatingIfNeeded: random.next()))
        case 7: return .i64(random.pick([Int64.max, Int64.min, -1, 0, 1, 2, 3, 4_611_686_018_427_387_904]))
        // The broker refuses NaN and infinities at the frame level: no producer can deliver them.
        case 8: return .f32(random.pick([Float.greatestFiniteMagnitude, 1.5, -0.0, .leastNonzeroMagnitude]))
        case 9: return .f64(random.pick([-Double.greatestFiniteMagnitude, 2.0, 1e308, .leastNonzeroMagnitude]))
        case 10: return .decimal(UInt8(truncatingIfNeeded: random.next()), UInt32(truncatingIfNeeded: random.next()))
        case 11:
            let noise = random.bytes(random.below(3000))
            return .utf8(random.pick([Array("2".utf8), noise, []]))
        case 12: return .bytes(random.bytes(random.below(50)))
        case 13: return .timestamp(random.next())
        case 14: return .void
        case 15: return .array((0..<random.below(4)).map { _ in value(depth: depth + 1) })
        default: return .table((0..<random.below(4)).map { _ in (random.pick(Self.names), value(depth: depth + 1)) })
        }
    }
}

/// A bare rabbitmq-c publisher that can send any property and any field kind, which Fairway's own never does.
final class RawPublisher {
    private let state: amqp_connection_state_t
    /// Memory for the strings and tables of the message being published, freed after it.
    private var arena: [UnsafeMutableRawPointer] = []

    init() throws {
        state = amqp_new_connection()
        let socket = amqp_tcp_socket_new(state)
        guard amqp_socket_open(socket, Broker.url.host, Int32(Broker.url.port)) == 0 else {
            throw AMQPError(message: "cannot connect", code: 0, connectionLost: true)
        }
        let login = fw_login(state, "/", 0, "guest", "guest")
        guard login.reply_type == AMQP_RESPONSE_NORMAL else {
            throw AMQPError(message: "cannot log in", code: 0, connectionLost: true)
        }
        amqp_channel_open(state, 1)
        guard amqp_get_rpc_reply(state).reply_type == AMQP_RESPONSE_NORMAL else {
            throw AMQPError(message: "cannot open a channel", code: 0, connectionLost: true)
        }
    }

    func close() {
        amqp_connection_close(state, AMQP_REPLY_SUCCESS)
        amqp_destroy_connection(state)
    }

    /// Declares the queue (durable, classic) and returns its message count: a round trip after the
    /// publishes on the same channel, so they have all been taken.
    @discardableResult
    func declare(_ queue: String) throws -> Int {
        var count: UInt32 = 0
        var arguments = fw_table()
        let reply = fw_queue_declare(state, 1, queue, 0, 1, 0, &arguments, &count)
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else {
            throw AMQPError(message: "declare failed: the broker refused a message", code: 0, connectionLost: true)
        }
        return Int(count)
    }

    func publish(to queue: String, _ message: FuzzedMessage) throws {
        defer {
            for memory in arena { free(memory) }
            arena.removeAll()
        }
        var properties = amqp_basic_properties_t()
        var flags = UInt32(AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_HEADERS_FLAG)
        properties.delivery_mode = 2
        properties.headers = table(message.headers)
        if let type = message.type {
            flags |= UInt32(AMQP_BASIC_TYPE_FLAG)
            properties.type = bytes(type)
        }
        if let id = message.messageID {
            flags |= UInt32(AMQP_BASIC_MESSAGE_ID_FLAG)
            properties.message_id = bytes(id)
        }
        if let timestamp = message.timestamp {
            flags |= UInt32(AMQP_BASIC_TIMESTAMP_FLAG)
            properties.timestamp = timestamp
        }
        if let priority = message.priority {
            flags |= UInt32(AMQP_BASIC_PRIORITY_FLAG)
            properties.priority = priority
        }
        if let contentType = message.contentType {
            flags |= UInt32(AMQP_BASIC_CONTENT_TYPE_FLAG)
            properties.content_type = bytes(contentType)
        }
        if let correlation = message.correlationID {
            flags |= UInt32(AMQP_BASIC_CORRELATION_ID_FLAG)
            properties.correlation_id = bytes(correlation)
        }
        properties._flags = flags
        let status = amqp_basic_publish(
            state, 1, amqp_empty_bytes, bytes(Array(queue.utf8)), 0, 0, &properties, bytes(message.body))
        guard status == AMQP_STATUS_OK.rawValue else {
            throw AMQPError(message: "publish failed: \(status)", code: 0, connectionLost: true)
        }
    }

    private func bytes(_ value: [UInt8]) -> amqp_bytes_t {
        let memory = malloc(max(1, value.count))!
        arena.append(memory)
        value.withUnsafeBytes { if let base = $0.baseAddress { memcpy(memory, base, value.count) } }
        return amqp_bytes_t(len: value.count, bytes: memory)
    }

    private func table(_ entries: [(String, FieldValue)]) -> amqp_table_t {
        guard !entries.isEmpty else { return amqp_table_t(num_entries: 0, entries: nil) }
        let memory = malloc(MemoryLayout<amqp_table_entry_t>.stride * entries.count)!
        arena.append(memory)
        let typed = memory.bindMemory(to: amqp_table_entry_t.self, capacity: entries.count)
        for (index, (key, value)) in entries.enumerated() {
            typed[index] = amqp_table_entry_t(key: bytes(Array(key.utf8)), value: field(value))
        }
        return amqp_table_t(num_entries: Int32(entries.count), entries: typed)
    }

    private func field(_ value: FieldValue) -> amqp_field_value_t {
        var field = amqp_field_value_t()
        func kind(_ letter: Character) { field.kind = letter.asciiValue! }
        switch value {
        case .bool(let v):
            kind("t")
            field.value.boolean = v ? 1 : 0
        case .i8(let v):
            kind("b")
            field.value.i8 = v
        case .u8(let v):
            kind("B")
            field.value.u8 = v
        case .i16(let v):
            kind("s")
            field.value.i16 = v
        case .u16(let v):
            kind("u")
            field.value.u16 = v
        case .i32(let v):
            kind("I")
            field.value.i32 = v
        case .u32(let v):
            kind("i")
            field.value.u32 = v
        case .i64(let v):
            kind("l")
            field.value.i64 = v
        case .f32(let v):
            kind("f")
            field.value.f32 = v
        case .f64(let v):
            kind("d")
            field.value.f64 = v
        case .decimal(let decimals, let v):
            kind("D")
            field.value.decimal = amqp_decimal_t(decimals: decimals, value: v)
        case .utf8(let v):
            kind("S")
            field.value.bytes = bytes(v)
        case .bytes(let v):
            kind("x")
            field.value.bytes = bytes(v)
        case .timestamp(let v):
            kind("T")
            field.value.u64 = v
        case .void: kind("V")
        case .array(let values):
            kind("A")
            let memory = malloc(MemoryLayout<amqp_field_value_t>.stride * max(1, values.count))!
            arena.append(memory)
            let typed = memory.bindMemory(to: amqp_field_value_t.self, capacity: max(1, values.count))
            for (index, item) in values.enumerated() { typed[index] = self.field(item) }
            field.value.array = amqp_array_t(num_entries: Int32(values.count), entries: values.isEmpty ? nil : typed)
        case .table(let entries):
            kind("F")
            field.value.table = table(entries)
        }
        return field
    }
}
