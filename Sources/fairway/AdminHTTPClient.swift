import FairwayRuntime
import NIOCore
import NIOHTTP1
import NIOPosix

/// One HTTP/1.1 request to a running fairway's admin API, on swift-nio's client pipeline.
///
/// Not URLSession: on Linux that pulls FoundationNetworking and libcurl with its two dozen libraries into
/// every start of the `fairway` binary (11 ms of each `fairway run` and every admin command, measured),
/// for a client that only ever speaks plain HTTP to 127.0.0.1 or a cluster address.
enum AdminHTTPClient {
    struct Answer {
        var status: Int
        var body: [UInt8]
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Sends `method path` with an optional JSON body to `http://host:port`, within `timeout`.
    static func exchange(
        host: String, port: Int, method: String, path: String, headers: [(String, String)], body: [UInt8]?,
        timeout: Duration
    ) async throws -> Answer {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.milliseconds(Int64(timeout.seconds * 1000)))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
                        wrappingChannelSynchronously: channel)
                }
            }
        return try await withThrowingTaskGroup(of: Answer?.self) { group in
            group.addTask {
                try await channel.executeThenClose { inbound, outbound in
                    var head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method), uri: path)
                    head.headers.add(name: "Host", value: "\(host):\(port)")
                    head.headers.add(name: "Connection", value: "close")
                    for (name, value) in headers { head.headers.add(name: name, value: value) }
                    if let body { head.headers.add(name: "Content-Length", value: "\(body.count)") }
                    try await outbound.write(.head(head))
                    if let body { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
                    try await outbound.write(.end(nil))
                    var answer = Answer(status: 0, body: [])
                    for try await part in inbound {
                        switch part {
                        case .head(let response): answer.status = Int(response.status.code)
                        case .body(let bytes): answer.body += bytes.readableBytesView
                        case .end: return answer
                        }
                    }
                    throw Failure(description: "the connection closed before the answer ended")
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let answer = try await group.next() ?? nil else {
                channel.channel.close(promise: nil)
                throw Failure(description: "no answer within \(timeout.compactDescription)")
            }
            return answer
        }
    }
}
