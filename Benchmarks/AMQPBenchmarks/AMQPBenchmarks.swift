import Benchmark
import BenchmarkSupport
import CRabbitMQ
import FairwayAMQP
import FairwayJobs
import FairwayRuntime
import FairwaySQLite
import FairwayScheduling
import Foundation
import Logging
import Synchronization

let address = "amqp://guest:guest@127.0.0.1:5672/%2f"
let queueCount = 120
let messages = 60_000
let prefetch = 32
/// Messages before the clock starts: RabbitMQ first loads each queue's backlog from disk as its consumer
/// appears (seconds for 120 queues here), for the raw loop and Fairway alike; the figures compare the
/// steady state after it.
let warmUp = 10_000

func queueNames(_ prefix: String) -> [String] { (0..<queueCount).map { "\(prefix)-\($0)" } }

func publish(_ names: [String], count: Int) throws {
    let publisher = try AMQPPublisher(url: try AMQPURL(address))
    defer { publisher.close() }
    var batch: [NewJob] = []
    for index in 0..<count {
        batch.append(NewJob(queue: names[index % names.count], type: "noop", payload: Array("{}".utf8)))
        if batch.count == 5_000 {
            try publisher.publish(batch)
            batch.removeAll(keepingCapacity: true)
        }
    }
    try publisher.publish(batch)
}

func delete(_ names: [String]) {
    guard let inspector = try? AMQPInspector(url: try AMQPURL(address)) else { return }
    for name in names { inspector.delete(name) }
}

/// The reference: rabbitmq-c alone, one connection, a channel and consumer per queue with the same
/// prefetch, every message's body copied and acknowledged singly.
func rawConsumeAndAck(_ names: [String], expected: Int, warm: inout UInt64) -> Int {
    let state = amqp_new_connection()
    let socket = amqp_tcp_socket_new(state)
    amqp_socket_open(socket, "127.0.0.1", 5672)
    _ = fw_login(state, "/", 0, "guest", "guest")
    for (index, name) in names.enumerated() {
        let channel = UInt16(index + 1)
        _ = fw_channel_open(state, channel)
        _ = fw_basic_qos(state, channel, UInt16(prefetch))
        var tag = [CChar](repeating: 0, count: 256)
        _ = fw_basic_consume(state, channel, name, &tag, 256)
    }
    var received = 0
    var timeout = timeval(tv_sec: 2, tv_usec: 0)
    while received < expected {
        amqp_maybe_release_buffers(state)
        var envelope = amqp_envelope_t()
        let reply = amqp_consume_message(state, &envelope, &timeout, 0)
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else { break }
        let body = Array(UnsafeRawBufferPointer(start: envelope.message.body.bytes, count: envelope.message.body.len))
        blackHole(body)
        amqp_basic_ack(state, envelope.channel, envelope.delivery_tag, 0)
        amqp_destroy_envelope(&envelope)
        received += 1
        if received == warmUp { warm = MonotonicClock.now }
    }
    amqp_connection_close(state, AMQP_REPLY_SUCCESS)
    amqp_destroy_connection(state)
    return received
}

let benchmarks: @Sendable () -> Void = {
    let perSecond = BenchmarkMetric.custom("messages/s", polarity: .prefersLarger, useScalingFactor: false)
    let configuration = Benchmark.Configuration(metrics: [perSecond], maxDuration: .seconds(60), maxIterations: 3)

    Benchmark("amqp: publish with confirms (AMQPPublisher, as fairway enqueue --amqp)", configuration: configuration) {
        benchmark in
        let names = queueNames("bench-pub-\(UUID().uuidString.prefix(4))")
        defer { delete(names) }
        let jobs = (0..<messages).map { NewJob(queue: names[$0 % queueCount], type: "noop", payload: Array("{}".utf8)) }
        let publisher = try AMQPPublisher(url: try AMQPURL(address))
        try publisher.publish(names.map { NewJob(queue: $0, type: "noop") })
        benchmark.startMeasurement()
        let began = MonotonicClock.now
        try publisher.publish(jobs)
        let seconds = Double(MonotonicClock.now - began) / 1e9
        benchmark.stopMeasurement()
        publisher.close()
        benchmark.measurement(perSecond, Int(Double(messages) / seconds))
    }

    Benchmark("amqp: raw rabbitmq-c loop, consume and ack each (reference)", configuration: configuration) {
        benchmark in
        let names = queueNames("bench-raw-\(UUID().uuidString.prefix(4))")
        defer { delete(names) }
        try publish(names, count: messages)
        benchmark.startMeasurement()
        var warm: UInt64 = 0
        let received = rawConsumeAndAck(names, expected: messages, warm: &warm)
        let seconds = Double(MonotonicClock.now - warm) / 1e9
        benchmark.stopMeasurement()
        precondition(received == messages, "raw loop received \(received)")
        benchmark.measurement(perSecond, Int(Double(messages - warmUp) / seconds))
    }

    Benchmark("amqp: noop jobs consumed, scheduled, run and acked, 2 workers, 120 queues", configuration: configuration)
    {
        benchmark in
        let names = queueNames("bench-e2e-\(UUID().uuidString.prefix(4))")
        defer { delete(names) }
        try publish(names, count: messages)
        var logger = Logger(label: "bench")
        logger.logLevel = .critical
        let source = CountingSource(
            try AMQPSource(
                options: AMQPSource.Options(url: try AMQPURL(address)), crashCounter: DeliveryCounter.init(path:),
                logger: logger), target: messages,
            warmUp: warmUp
        )
        var registry = JobRegistry()
        BuiltinJobs.register(in: &registry)
        let weights: [Double] = [8, 4, 2, 1]
        let engine = try Engine(
            configuration: EngineConfiguration(
                workers: 2,
                queues: names.enumerated().map {
                    QueueDefinition(name: $1, settings: QueueSettings(weight: weights[$0 % 4]), credit: prefetch)
                }
            ),
            registry: registry,
            sources: [source],
            logger: logger
        )
        benchmark.startMeasurement()
        try engine.start()
        source.done.wait()
        let seconds = Double(MonotonicClock.now - source.warmedAt.load(ordering: .relaxed)) / 1e9
        engine.shutdown(drainTimeout: .seconds(5))
        benchmark.stopMeasurement()
        benchmark.measurement(perSecond, Int(Double(messages - warmUp) / seconds))
    }
}
