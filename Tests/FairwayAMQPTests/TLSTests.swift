import FairwayJobs
import FairwayRuntime
import FairwaySQLite
import FairwayTestSupport
import Foundation
import Testing

@testable import FairwayAMQP

/// amqps:// end to end against the broker's TLS listener on 127.0.0.1:5671 (`.ci/start-broker`), with a
/// throw-away CA made here with openssl: messages consumed and published with peer and hostname
/// verification, and a clear refusal for a certificate from another CA, for another host name, or expired.
@Suite("TLS (amqps://)", .serialized, .restartsBroker, .timeLimit(.minutes(10)))
struct TLSTests {
    let certificates: TestCertificates

    init() throws {
        try #require(Broker.ready, "the RabbitMQ broker could not be started")
        certificates = try TestCertificates()
        try certificates.install(certificate: certificates.server)
    }

    func url(host: String = "localhost") throws -> AMQPURL {
        try AMQPURL("amqps://guest:guest@\(host):5671/%2f")
    }

    @Test("consumed and published over TLS, the peer and its host name verified")
    func roundTrip() throws {
        let names = TestQueues()
        let queue = names.name("tls")
        let address = try url()
        let authority = certificates.authority
        let harness = try AMQPHarness(
            queues: [QueueDefinition(name: queue)],
            configure: { options in
                options.url = address
                options.caCertificate = authority
            })
        try harness.engine.start()
        defer { harness.engine.shutdown(drainTimeout: .seconds(5)) }
        #expect(harness.source.isConnected)
        let publisher = try AMQPPublisher(url: try url(), caCertificate: certificates.authority)
        try publisher.publish((0..<20).map { _ in NewJob(queue: queue, type: "noop") })
        publisher.close()
        #expect(eventually { harness.snapshot(queue).succeeded == 20 })
    }

    @Test("a certificate from another CA is refused, and the error says why")
    func wrongAuthority() throws {
        let error = try refusal(url(), caCertificate: certificates.otherAuthority)
        #expect(error.contains("the broker's TLS certificate was refused"), "\(error)")
        #expect(error.contains("it is not signed by a CA you trust"), "\(error)")
        #expect(error.contains(certificates.otherAuthority), "the error names the CA file: \(error)")
    }

    @Test("a certificate for another host name is refused, and the error names the host")
    func wrongHostName() throws {
        // The certificate names only "localhost"; 127.0.0.1 is the same broker under a name it does not list.
        let error = try refusal(url(host: "127.0.0.1"), caCertificate: certificates.authority)
        #expect(error.contains("not for host '127.0.0.1'"), "\(error)")
    }

    @Test("an expired certificate is refused, and the error says it expired")
    func expired() throws {
        try certificates.install(certificate: certificates.expired)
        defer { try? certificates.install(certificate: certificates.server) }
        let error = try refusal(url(), caCertificate: certificates.authority)
        #expect(error.contains("certificate has expired"), "\(error)")
    }

    /// Connects, expecting a refusal; returns its message.
    func refusal(_ url: AMQPURL, caCertificate: String) throws -> String {
        do {
            _ = try AMQPConnection(url: url, heartbeat: 0, timeout: .seconds(5), caCertificate: caCertificate)
            Issue.record("the connection was accepted")
            return ""
        } catch let error as AMQPError {
            #expect(!error.message.contains("guest:guest"))
            return error.message
        }
    }
}

/// A CA, a certificate for "localhost" signed by it, the same certificate expired in 2020, and an
/// unrelated CA, made with openssl in a temporary folder.
struct TestCertificates {
    let folder: String
    var authority: String { folder + "/ca.pem" }
    var otherAuthority: String { folder + "/other-ca.pem" }
    var server: String { folder + "/server.pem" }
    var expired: String { folder + "/expired.pem" }
    var key: String { folder + "/server.key" }
    /// Where the broker's TLS listener reads its files (.ci/start-broker).
    static let brokerFolder = "/var/lib/fairway-test-tls"

    init() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("fairway-tls-\(UUID())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for name in ["ca", "other-ca"] {
            try openssl(
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=fairway test \(name)",
                "-keyout", "\(name).key", "-out", "\(name).pem")
        }
        try openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out",
            "server.csr")
        try "subjectAltName=DNS:localhost\n".write(toFile: folder + "/san.ext", atomically: true, encoding: .utf8)
        try openssl(
            "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", "san.ext", "-out", "server.pem")
        // `openssl ca` is the one that can date a certificate in the past.
        try """
        [ca]
        default_ca = test
        [test]
        database = index.txt
        new_certs_dir = .
        certificate = ca.pem
        private_key = ca.key
        serial = serial
        default_md = sha256
        policy = anything
        [anything]
        commonName = supplied
        """.write(toFile: folder + "/ca.cnf", atomically: true, encoding: .utf8)
        try "".write(toFile: folder + "/index.txt", atomically: true, encoding: .utf8)
        try "1000\n".write(toFile: folder + "/serial", atomically: true, encoding: .utf8)
        try openssl(
            "ca", "-batch", "-config", "ca.cnf", "-in", "server.csr", "-out", "expired.pem", "-notext",
            "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", "-extfile", "san.ext")
    }

    /// Puts `certificate` (with the key and the CA) where the broker reads them, and makes it read them again.
    func install(certificate: String) throws {
        let files = [(certificate, "server.pem"), (key, "server.key"), (authority, "ca.pem")]
        for (source, name) in files {
            let target = Self.brokerFolder + "/" + name
            try? FileManager.default.removeItem(atPath: target)
            try FileManager.default.copyItem(atPath: source, toPath: target)
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: target)
        }
        try #require(
            Broker.control(["eval", "ssl:clear_pem_cache()."]) == 0, "the broker did not reload its certificate")
    }

    private func openssl(_ arguments: String...) throws {
        let openssl = try ChildProcess.run("/usr/bin/openssl", arguments, directory: folder)
        try #require(
            openssl.exit == .exited(0), "openssl \(arguments.joined(separator: " ")) failed: \(openssl.errorText)")
    }
}
