import Foundation

/// A broker address: `amqp://user:password@host:port/vhost`, or `amqps://` for TLS. The password is kept
/// for logging in and never appears in a description, an error or a log line.
public struct AMQPURL: Sendable, Hashable, CustomStringConvertible {
    public var tls: Bool
    public var host: String
    public var port: Int
    public var user: String
    var password: String
    /// The virtual host, decoded ("/" for the default).
    public var vhost: String

    /// The URL with the password replaced, safe for logs.
    public var description: String {
        let scheme = tls ? "amqps" : "amqp"
        let vhostPart =
            vhost == "/" ? "%2f" : (vhost.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? vhost)
        return "\(scheme)://\(user):***@\(host):\(port)/\(vhostPart)"
    }

    public struct Problem: Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    public init(_ text: String) throws {
        guard let components = URLComponents(string: text), let scheme = components.scheme else {
            throw Problem(description: "not a URL; expected amqp://user:password@host:5672/vhost")
        }
        switch scheme {
        case "amqp": tls = false
        case "amqps": tls = true
        default: throw Problem(description: "scheme '\(scheme)' is not amqp or amqps")
        }
        guard let host = components.host, !host.isEmpty else {
            throw Problem(description: "no host; expected amqp://user:password@host:5672/vhost")
        }
        self.host = host
        self.port = components.port ?? (tls ? 5671 : 5672)
        self.user = components.user?.removingPercentEncoding ?? "guest"
        self.password = components.password?.removingPercentEncoding ?? "guest"
        let path = components.percentEncodedPath
        if path.isEmpty || path == "/" {
            vhost = "/"
        } else {
            vhost = String(path.dropFirst()).removingPercentEncoding ?? String(path.dropFirst())
        }
    }
}
