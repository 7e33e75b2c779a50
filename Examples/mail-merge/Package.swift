// swift-tools-version: 6.1
// An application that runs its own jobs under Fairway: it depends on the Fairway package (here by path)
// and imports one module, `Fairway`, beside Hummingbird for its HTTP route.
import PackageDescription

let package = Package(
    name: "mail-merge",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Fairway", path: "../.."),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        .executableTarget(
            name: "MailMerge",
            dependencies: [
                .product(name: "Fairway", package: "Fairway"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ]
        )
    ],
    swiftLanguageModes: [.v6]
)
