import Testing

@testable import FairwayHTTP

@Suite("Admin bearer token")
struct BearerTokenTests {
    @Test(
        "only the exact header matches: not a prefix, an extension, another case or another scheme",
        arguments: [
            ("Bearer s3cret-token", true),
            ("Bearer s3cret-toke", false),
            ("Bearer s3cret-token2", false),
            ("Bearer S3CRET-TOKEN", false),
            ("bearer s3cret-token", false),
            ("Basic s3cret-token", false),
            ("s3cret-token", false),
            ("", false),
            ("Bearer ", false),
        ])
    func matching(header: String, expected: Bool) {
        #expect(BearerToken.matches(header: header, token: "s3cret-token") == expected)
    }

    @Test("equal bytes compare equal whatever their length; any difference, anywhere, does not")
    func constantTimeEquality() {
        let token = Array("abcdefghijklmnopqrstuvwxyz".utf8)
        #expect(BearerToken.constantTimeEquals(token, token))
        #expect(BearerToken.constantTimeEquals([], []))
        for index in token.indices {
            var changed = token
            changed[index] ^= 1
            #expect(!BearerToken.constantTimeEquals(token, changed), "a difference at byte \(index)")
        }
        // Lengths that differ by a multiple of 256 must not cancel out in the length check.
        #expect(!BearerToken.constantTimeEquals(Array(repeating: 0, count: 256), []))
    }
}
