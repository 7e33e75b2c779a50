/// The admin API's check of an `Authorization: Bearer …` header.
enum BearerToken {
    /// True when `header` is exactly `Bearer <token>`. The comparison takes the same time wherever the
    /// first difference is, so the response time does not tell a caller how much of a guess was right.
    static func matches(header: String, token: String) -> Bool {
        constantTimeEquals(Array(header.utf8), Array("Bearer \(token)".utf8))
    }

    /// Compares every byte of both, whatever differs first; only the lengths' equality shows in the time.
    static func constantTimeEquals(_ left: [UInt8], _ right: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: left.count ^ right.count)
        if left.count != right.count { difference |= 1 }
        let count = max(left.count, right.count)
        for index in 0..<count {
            let a = index < left.count ? left[index] : 0
            let b = index < right.count ? right[index] : 0
            difference |= a ^ b
        }
        return difference == 0
    }
}
