// swift-tools-version:5.9
import PackageDescription

// Module graph (each arrow points one way only):
// COpenBLAS, CZlib, CMachineInfo (CPUID), CCoreKernels (AVX-512 C) → DSCore → DSLayers (+ CDenseKernels, AVX-512 C) → DSSparsity (+ CSparseKernels, AVX-512 C) → DSTraining → DSData → DSExperiment → dst
let package = Package(
    name: "DynamicSparse",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "dst", targets: ["dst"]),
        .library(name: "DSExperiment", targets: ["DSExperiment"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        .target(name: "CMachineInfo"),
        .target(name: "CCoreKernels"),
        .target(name: "DSCore", dependencies: ["COpenBLAS", "CMachineInfo", "CCoreKernels"]),
        .target(name: "CDenseKernels"),
        .target(name: "DSLayers", dependencies: ["DSCore", "CDenseKernels"]),
        .target(name: "CSparseKernels"),
        .target(name: "DSSparsity", dependencies: ["DSCore", "DSLayers", "CSparseKernels"]),
        .target(name: "DSTraining", dependencies: ["DSCore", "DSLayers"]),
        .target(name: "DSData", dependencies: ["DSCore", "CZlib"]),
        .target(name: "DSExperiment", dependencies: [
            "DSCore", "DSLayers", "DSSparsity", "DSTraining", "DSData",
            .product(name: "Yams", package: "Yams"),
        ]),
        .executableTarget(name: "dst", dependencies: [
            "DSCore", "DSExperiment", "DSData", "DSSparsity",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "dst-bench", dependencies: [
            "DSCore", "DSLayers", "DSTraining", "DSExperiment",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .target(name: "DSTestSupport", dependencies: ["DSCore", "DSLayers", "DSData"],
                path: "Tests/DSTestSupport"),
        .testTarget(name: "DSCoreTests", dependencies: ["DSCore", "DSTestSupport"]),
        .testTarget(name: "DSLayersTests", dependencies: ["DSLayers", "CDenseKernels", "DSTestSupport"]),
        .testTarget(name: "DSSparsityTests", dependencies: ["DSSparsity", "CSparseKernels", "DSTestSupport"]),
        .testTarget(name: "DSTrainingTests", dependencies: ["DSTraining", "DSTestSupport"]),
        .testTarget(name: "DSDataTests", dependencies: ["DSData", "DSTestSupport"]),
        .testTarget(name: "DSExperimentTests", dependencies: ["DSExperiment", "DSTestSupport"]),
    ]
)
