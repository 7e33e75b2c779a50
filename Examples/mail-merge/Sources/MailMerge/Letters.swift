import Fairway

/// A recipient of a campaign.
struct Recipient: Codable, Sendable {
    var name: String
    var email: String
}

/// Render one letter from the campaign's template into the outbox: blocking file I/O.
struct RenderLetter: Codable, Sendable {
    var campaign: String
    var template: String
    var recipient: Recipient
    var outbox: String
}

/// Send a rendered letter: an `async` handler talking to a (simulated) mail server.
struct SendLetter: Codable, Sendable {
    var campaign: String
    var letter: String
    var email: String
    var outbox: String
}

/// The job types of the application, with their parameters' types.
enum Letters {
    static let render = JobName<RenderLetter>("render-letter")
    static let send = JobName<SendLetter>("send-letter")
    /// The queues the configuration file declares.
    static let renderQueue = "letters"
    static let sendQueue = "outgoing-mail"
}
