import FairwayScheduling
import Testing

@testable import FairwayHTTP

@Suite("Admin API bodies")
struct QueueUpdateTests {
    @Test(
        "a body nested deep enough to trap Foundation's JSONDecoder is a 400, not a crash",
        arguments: [513, 514, 5000])
    func deepNesting(depth: Int) {
        let body = Array(String(repeating: "[", count: depth).utf8)
        #expect(throws: AdminError.self) { _ = try QueueUpdate.apply(body, to: QueueSettings()) }
    }

    @Test("a weight is applied; an unknown field is named")
    func fields() throws {
        #expect(try QueueUpdate.apply(Array(#"{"weight": 2}"#.utf8), to: QueueSettings()).weight == 2)
        do {
            _ = try QueueUpdate.apply(Array(#"{"wieght": 2}"#.utf8), to: QueueSettings())
            Issue.record("an unknown field was accepted")
        } catch {
            #expect(error.field == "wieght" && error.status == 400)
        }
    }
}
