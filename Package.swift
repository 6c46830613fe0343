// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "isofuse",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "isofuse", targets: ["isofuse"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    ],
    targets: [
        // The C libraries. Each is a module map plus a shim header that fixes the
        // include order (and, for FUSE, defines FUSE_USE_VERSION).
        .systemLibrary(name: "CIsoburn", pkgConfig: "libisoburn-1",
                       providers: [.apt(["libisoburn-dev", "libisofs-dev", "libburn-dev"])]),
        .systemLibrary(name: "CFuse3", pkgConfig: "fuse3",
                       providers: [.apt(["libfuse3-dev"])]),
        // Linux headers Swift's Glibc module leaves out (xattrs, malloc_trim).
        .systemLibrary(name: "CLinux"),

        // The medium: drives, sessions, trees, reads, verification, appends.
        .target(name: "SessionStore",
                dependencies: ["CIsoburn", "CLinux", .product(name: "SystemPackage", package: "swift-system")],
                swiftSettings: strict),
        // The staging overlay (grows with the mount).
        .target(name: "Stage",
                dependencies: ["SessionStore", "CLinux", .product(name: "SystemPackage", package: "swift-system")],
                swiftSettings: strict),
        // The executable: CLI and FUSE glue.
        .executableTarget(name: "isofuse",
                          dependencies: ["SessionStore", "Stage", "CFuse3", "CLinux",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser"),
                                         .product(name: "SystemPackage", package: "swift-system")],
                          swiftSettings: strict),

        // SessionStore alone, measured by bench/run (not a test).
        .executableTarget(name: "sessionstore-bench",
                          dependencies: ["SessionStore", .product(name: "SystemPackage", package: "swift-system")],
                          swiftSettings: strict),

        // Real images made by xorriso and genisoimage, judged by xorriso; also
        // runs the built isofuse executable.
        .testTarget(name: "IsofuseTests",
                    dependencies: ["SessionStore", "Stage", "isofuse",
                                   .product(name: "SystemPackage", package: "swift-system")],
                    swiftSettings: strict),
    ]
)
