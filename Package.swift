// swift-tools-version: 6.1
import Foundation
import PackageDescription

let package = Package(
    name: "Fairway",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "fairway", targets: ["fairway"]),
        .library(name: "Fairway", targets: ["Fairway"]),
        .library(name: "FairwayScheduling", targets: ["FairwayScheduling"]),
        .library(name: "FairwayJobs", targets: ["FairwayJobs"]),
        .library(name: "FairwayRuntime", targets: ["FairwayRuntime"]),
        .library(name: "FairwayProcessWorkers", targets: ["FairwayProcessWorkers"]),
        .library(name: "FairwayConfig", targets: ["FairwayConfig"]),
        .library(name: "FairwaySQLite", targets: ["FairwaySQLite"]),
        .library(name: "FairwayAMQP", targets: ["FairwayAMQP"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // The scheduling core: virtual-time weighted-fair queueing. No I/O, no clocks, no threads.
        .target(
            name: "FairwayScheduling",
            dependencies: [.product(name: "DequeModule", package: "swift-collections")]
        ),
        // The job API: typed job definitions, the handler registry, contexts, retry policy, built-ins.
        .target(
            name: "FairwayJobs",
            dependencies: [
                .product(name: "Logging", package: "swift-log")
            ]
        ),
        // fork/exec and prctl for worker processes: what must not be written in Swift.
        .systemLibrary(
            name: "CProcess"
        ),
        // Process-isolated workers: the framed pipe protocol, supervised children, the worker-side loop.
        .target(
            name: "FairwayProcessWorkers",
            dependencies: [
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "DequeModule", package: "swift-collections"),
                "CProcess",
                "FairwayJobs",
                "FairwayRuntime",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Sources, the worker thread pool and the dispatcher that joins them to the scheduler.
        .target(
            name: "FairwayRuntime",
            dependencies: [
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                "FairwayScheduling",
                "FairwayJobs",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Debian's libsqlite3, through its C API.
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        // The embedded queue: one SQLite file, leases, batched durable settlement, the enqueue and admin API.
        .target(
            name: "FairwaySQLite",
            dependencies: [
                "CSQLite",
                "FairwayRuntime",
                "FairwayScheduling",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // Debian's librabbitmq (rabbitmq-c 0.11), with small C helpers for login and field tables.
        .systemLibrary(
            name: "CRabbitMQ",
            pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"])]
        ),
        // The RabbitMQ source: one I/O thread per connection, push consumption, confirms, reconnection.
        .target(
            name: "FairwayAMQP",
            dependencies: [
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                "CRabbitMQ",
                "FairwayRuntime",
                "FairwayScheduling",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The HTTP surface: Prometheus metrics, the autoscaler signal, health, and the admin API.
        .target(
            name: "FairwayHTTP",
            dependencies: [
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                "FairwayJobs",
                "FairwayRuntime",
                "FairwayScheduling",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // The dashboard page, compiled into the binary: it works offline and wherever the binary is copied.
            resources: [.embedInCode("Dashboard/dashboard.html")]
        ),
        // The YAML configuration file: parsing, validation and errors that name the field.
        .target(
            name: "FairwayConfig",
            dependencies: [
                "FairwayScheduling",
                "FairwayRuntime",
                "FairwaySQLite",
                "FairwayAMQP",
                "FairwayHTTP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // What an application depends on: the service that joins the modules below, and their re-exports.
        .target(
            name: "Fairway",
            dependencies: [
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                "FairwayScheduling",
                "FairwayJobs",
                "FairwayRuntime",
                "FairwayConfig",
                "FairwaySQLite",
                "FairwayAMQP",
                "FairwayHTTP",
                "FairwayProcessWorkers",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "fairway",
            dependencies: [
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                "Fairway",
                "FairwayScheduling",
                "FairwayJobs",
                "FairwayRuntime",
                "FairwayConfig",
                "FairwaySQLite",
                "FairwayAMQP",
                "FairwayHTTP",
                "FairwayProcessWorkers",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "FairwaySchedulingTests",
            dependencies: [
                "FairwayScheduling", "FairwayTestSupport",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "FairwayJobsTests",
            dependencies: [
                "FairwayJobs", "FairwayTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "FairwayRuntimeTests",
            dependencies: [
                "FairwayRuntime", "FairwayJobs", "FairwayScheduling", "FairwayTestSupport",
                .product(name: "PropertyBased", package: "swift-property-based"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "FairwayConfigTests",
            dependencies: [
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                "FairwayConfig", "FairwayRuntime", "FairwayScheduling", "FairwaySQLite", "FairwayAMQP",
                "FairwayTestSupport", .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "FairwaySQLiteTests",
            dependencies: [
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                "FairwaySQLite", "FairwayRuntime", "FairwayJobs", "FairwayScheduling", "CSQLite", "FairwayTestSupport",
            ]
        ),
        // Helpers shared by test targets: the broker and its lock, a log capture, a seeded generator, an
        // executor of its own for async tests.
        .target(
            name: "FairwayTestSupport",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            path: "Tests/FairwayTestSupport"
        ),
        .testTarget(
            name: "FairwayAMQPTests",
            dependencies: [
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                "FairwayAMQP", "FairwaySQLite", "FairwayRuntime", "FairwayJobs", "FairwayScheduling",
                "FairwayTestSupport", "CRabbitMQ",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "FairwayProcessWorkersTests",
            dependencies: [
                "FairwayProcessWorkers", "FairwayRuntime", "FairwaySQLite", "FairwayTestSupport",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "FairwayHTTPTests",
            dependencies: ["FairwayHTTP", "FairwayConfig", "FairwayRuntime", "FairwayScheduling", "FairwayTestSupport"]
        ),
        .testTarget(
            name: "FairwayTests",
            dependencies: [
                "Fairway", "FairwaySQLite", "FairwayAMQP", "FairwayTestSupport",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "FairwayCLITests",
            dependencies: [
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                "fairway", "FairwaySQLite", "FairwayAMQP", "FairwayProcessWorkers", "FairwayRuntime",
                "FairwayTestSupport",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// Benchmarks (ordo-one/benchmark) build only when asked for, so that the test suite does not pay for them:
//   FAIRWAY_BENCHMARKS=1 swift package --scratch-path .build-benchmarks benchmark
if ProcessInfo.processInfo.environment["FAIRWAY_BENCHMARKS"] != nil {
    package.dependencies.append(
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"])
    )
    package.targets += [
        // What several benchmarks share: a source wrapper that counts settlements.
        .target(
            name: "BenchmarkSupport",
            dependencies: [
                "FairwayRuntime", "FairwayJobs", "FairwayScheduling", "FairwayProcessWorkers",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/BenchmarkSupport"
        ),
        .executableTarget(
            name: "SchedulerBenchmarks",
            dependencies: ["FairwayScheduling", .product(name: "Benchmark", package: "benchmark")],
            path: "Benchmarks/SchedulerBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "EngineBenchmarks",
            dependencies: [
                "FairwayScheduling", "FairwayRuntime", "FairwayJobs", "BenchmarkSupport",
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/EngineBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "SQLiteBenchmarks",
            dependencies: [
                "CSQLite", "FairwaySQLite", "FairwayScheduling", "FairwayRuntime", "FairwayJobs", "BenchmarkSupport",
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/SQLiteBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "AMQPBenchmarks",
            dependencies: [
                "CRabbitMQ", "FairwayAMQP", "FairwaySQLite", "FairwayScheduling", "FairwayRuntime", "FairwayJobs",
                "BenchmarkSupport",
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/AMQPBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // The noisy-neighbour scenario of docs/benchmarks.md: an end-to-end run, not an ordo-one benchmark.
        .executableTarget(
            name: "NoisyNeighbour",
            dependencies: [
                "FairwaySQLite", "FairwayScheduling", "FairwayRuntime", "FairwayJobs",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/NoisyNeighbour"
        ),
    ]
}
