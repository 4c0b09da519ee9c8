import DSExperiment
import DSSparsity
import DSTestSupport
import Foundation
import Testing

/// Export of a trained SRigL model and condensed evaluation.
@Suite struct CondensedExportTests {
    func train(_ strategy: String, root: String,
               sparsity: String = "sparsity: 0.8, update_interval: 2, srigl: {gamma_sal: 0.9}") throws -> String {
        Fixtures.writeIDXDataset(root: root + "/data", train: 64, test: 24, size: 12)
        let config = try ConfigLoader.load(yaml: """
            name: \(strategy)
            seed: 2
            data: {dataset: fashion-mnist, root: \(root)/data}
            model: {name: lenet5, width_multiplier: 2}
            optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
            training: {epochs: 1, batch_size: 16, threads: 1}
            output: {root: \(root)/results}
            sparsity: {strategy: \(strategy), \(sparsity)}
            """)
        try ExperimentRun(config: config).run()
        return root + "/results/" + strategy
    }

    @Test func exportRoundTripsAndCondensedOutputsMatchTheMaskedModel() throws {
        let folder = try train("srigl", root: Fixtures.temporaryDirectory("export"))
        let trained = try TrainedRun(folder: folder)
        let export = try CondensedExport(model: "lenet5", trained: trained.model, sparse: trained.sparse)
        #expect(export.layers.map(\.name).contains("conv2") && export.layers.map(\.name).contains("fc1"))
        let path = folder + "/condensed.bin"
        try export.write(to: path)
        let back = try CondensedExport.read(path)
        #expect(back.model == "lenet5")
        #expect(back.layers.map(\.name) == export.layers.map(\.name))
        #expect(zip(back.layers, export.layers).allSatisfy { $0.layer == $1.layer })

        let dense = trained.evaluate()
        try back.install(into: trained.model)
        let condensed = trained.evaluate()
        let scale = dense.logits.map { abs($0) }.max()!
        let diff = zip(dense.logits, condensed.logits).map { abs($0 - $1) }.max()! / scale
        #expect(diff < 1e-4)
        #expect(condensed.result.accuracy == dense.result.accuracy)
        #expect(dense.logits != [] && dense.logits.count == condensed.logits.count)
    }

    /// N:M masks have constant fan-in, so RigL under 1:4 condenses like SRigL.
    @Test func nOfMMasksExportAndEvaluateAlike() throws {
        let folder = try train("rigl", root: Fixtures.temporaryDirectory("export-nm"),
                               sparsity: "structure: n_of_m, n: 1, m: 4, sparsity: 0.75, distribution: uniform, update_interval: 2")
        let trained = try TrainedRun(folder: folder)
        let export = try CondensedExport(model: "lenet5", trained: trained.model, sparse: trained.sparse)
        #expect(export.layers.count == trained.sparse.layers.filter { $0.mask != nil }.count)
        let dense = trained.evaluate()
        try export.install(into: trained.model)
        let condensed = trained.evaluate()
        let scale = dense.logits.map { abs($0) }.max()!
        #expect(zip(dense.logits, condensed.logits).map { abs($0 - $1) }.max()! / scale < 1e-4)
        #expect(condensed.result.accuracy == dense.result.accuracy)
    }

    @Test func aDamagedExportIsRefused() throws {
        let folder = try train("srigl", root: Fixtures.temporaryDirectory("damaged-export"))
        let trained = try TrainedRun(folder: folder)
        let path = folder + "/condensed.bin"
        try CondensedExport(model: "lenet5", trained: trained.model, sparse: trained.sparse).write(to: path)
        var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        bytes[bytes.count / 3] ^= 0x40
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        do {
            _ = try CondensedExport.read(path)
            Issue.record("a damaged export was accepted")
        } catch let e as RunError {
            #expect(e.message.contains("checksum mismatch") && e.message.contains(path))
        }
    }

    @Test func unstructuredMasksAreNotExported() throws {
        let folder = try train("rigl", root: Fixtures.temporaryDirectory("rigl-export"))
        let trained = try TrainedRun(folder: folder)
        do {
            _ = try CondensedExport(model: "lenet5", trained: trained.model, sparse: trained.sparse)
            Issue.record("an unstructured mask was condensed")
        } catch let e as RunError {
            #expect(e.message.contains("not constant fan-in") && e.message.contains("layer conv1"))
        }
    }
}
