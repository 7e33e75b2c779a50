import Crypto
import Foundation

/// Signs the attempt count a retry copy carries (`x-fairway-attempt`), so that only counts Fairway wrote
/// are believed. A producer's forged or copied count cannot skip retries: without a valid signature it is
/// ignored and the message starts at attempt 1.
///
/// The signature is an HMAC-SHA256 over the queue, the count, the message id and the body. Its key is
/// `attemptKey` when configured (the same on every consumer), otherwise derived from the broker account's
/// credentials, which every consumer of that account shares: no configuration for the common case, and a
/// producer that does not hold the password cannot sign.
struct AttemptSigner: Sendable {
    private let key: SymmetricKey

    init(key: [UInt8]) {
        self.key = SymmetricKey(data: key)
    }

    /// The key derived from the account: HMAC(password, "fairway x-fairway-attempt v1", user, vhost).
    init(deriveFrom url: AMQPURL) {
        var context = Self.framed(Array("fairway x-fairway-attempt v1".utf8))
        context += Self.framed(Array(url.user.utf8)) + Self.framed(Array(url.vhost.utf8))
        let derived = HMAC<SHA256>.authenticationCode(
            for: context, using: SymmetricKey(data: Array(url.password.utf8)))
        self.init(key: Array(derived))
    }

    /// The signature to send beside `attempt`, in hex.
    func signature(queue: String, attempt: Int, messageID: String?, body: [UInt8]) -> String {
        let code = HMAC<SHA256>.authenticationCode(
            for: Self.message(queue: queue, attempt: attempt, messageID: messageID, body: body), using: key)
        return code.map { String(format: "%02x", $0) }.joined()
    }

    /// True when `signature` is the one Fairway would have written for this count; compared in constant time.
    func verify(_ signature: String, queue: String, attempt: Int, messageID: String?, body: [UInt8]) -> Bool {
        guard let code = Self.bytes(fromHex: signature), code.count == SHA256.byteCount else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(
            code, authenticating: Self.message(queue: queue, attempt: attempt, messageID: messageID, body: body),
            using: key)
    }

    private static func message(queue: String, attempt: Int, messageID: String?, body: [UInt8]) -> [UInt8] {
        framed(Array(queue.utf8)) + framed(Array(String(attempt).utf8)) + framed(Array((messageID ?? "").utf8))
            + framed(body)
    }

    /// Length first, so that no two field lists run together into the same bytes.
    private static func framed(_ bytes: [UInt8]) -> [UInt8] {
        withUnsafeBytes(of: UInt64(bytes.count).bigEndian, Array.init) + bytes
    }

    private static func bytes(fromHex text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let high = hexValue(digits[index]), let low = hexValue(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
        default: return nil
        }
    }
}
