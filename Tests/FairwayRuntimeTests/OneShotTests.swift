import FairwayRuntime
import Foundation
import Testing

@Suite("OneShot")
struct OneShotTests {
    @Test("a waiter gets the value handed over from another thread, and only the first value counts")
    func handsOverOnce() {
        let shot = OneShot<Int>()
        let started = OneShot<Void>()
        Thread {
            started.fulfil(())
            Thread.sleep(forTimeInterval: 0.01)
            shot.fulfil(1)
            shot.fulfil(2)
        }.start()
        started.wait()
        #expect(shot.wait() == 1)
        #expect(shot.wait() == 1)
    }
}
