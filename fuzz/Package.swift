// swift-tools-version:6.1
// The fuzzer of isofuse's image-loading path: a package of its own, so that
// its sanitizer flags never reach the main build. Its SessionStore, CIsoburn
// and CLinux are symlinks to the main package's sources; the fuzz target's
// ImageWorkout.swift is the one the tests use. Built and run by fuzz/run.sh.
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "isofuse-fuzz",
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    ],
    targets: [
        .systemLibrary(name: "CIsoburn", pkgConfig: "libisoburn-1"),
        .systemLibrary(name: "CLinux"),
        .target(name: "SessionStore",
                dependencies: ["CIsoburn", "CLinux", .product(name: "SystemPackage", package: "swift-system")],
                swiftSettings: strict),
        .systemLibrary(name: "CFuzzer"),
        .executableTarget(name: "isofuse-fuzz", dependencies: ["SessionStore", "CFuzzer"],
                          swiftSettings: strict),
    ]
)
