import Fairway
import Hummingbird

/// `POST /campaigns`: `{"campaign": "…", "template": "Dear {{name}}, …", "recipients": [{"name", "email"}]}`
/// enqueues one render job per recipient, all or none, and answers with their ids.
struct Campaign: Decodable {
    var campaign: String
    var template: String
    var recipients: [Recipient]
}

struct Enqueued: ResponseEncodable {
    var enqueued: Int
    var ids: [String]
}

func router(producer: any JobProducer, outbox: String) -> Router<BasicRequestContext> {
    let router = Router()
    router.post("campaigns") { request, context -> Enqueued in
        let campaign = try await request.decode(as: Campaign.self, context: context)
        let jobs = campaign.recipients.map {
            RenderLetter(campaign: campaign.campaign, template: campaign.template, recipient: $0, outbox: outbox)
        }
        let ids = try await producer.enqueue(Letters.render, batch: jobs, queue: Letters.renderQueue)
        return Enqueued(enqueued: ids.count, ids: ids)
    }
    router.get("health") { _, _ in "ok" }
    return router
}
