import DSCore
import DSExperiment
import DSLayers
import DSSparsity
import DSTestSupport
import Foundation
import Testing

/// A tiny ViT trained end to end with SRigL, exported and evaluated condensed.
@Suite struct VisionTransformerRunTests {
    @Test func sriglViTTrainsExportsAndEvaluatesCondensed() throws {
        let root = Fixtures.temporaryDirectory("vit")
        Fixtures.writeIDXDataset(root: root + "/data", train: 64, test: 24)
        let config = try ConfigLoader.load(yaml: """
            name: vit
            seed: 1
            data: {dataset: fashion-mnist, root: \(root)/data}
            model: {name: vit, vit: {patch_size: 4, depth: 1, width: 8, heads: 2, mlp_ratio: 2}}
            optimizer: {name: adamw, lr: 0.003, weight_decay: 0.05, grad_clip_norm: 1.0}
            schedule: {name: cosine, warmup_epochs: 0.5}
            training: {epochs: 2, batch_size: 16, threads: 1, label_smoothing: 0.1}
            output: {root: \(root)/results}
            sparsity: {strategy: srigl, sparsity: 0.5, distribution: uniform, update_interval: 2, srigl: {gamma_sal: 0.95}}
            """)
        try ExperimentRun(config: config).run()
        let folder = root + "/results/vit"
        let rendered = try String(contentsOfFile: folder + "/config.yaml", encoding: .utf8)
        #expect(rendered.contains("decay_norms_and_biases: false") && rendered.contains("grad_clip_norm: 1.0"))
        let layers = try String(contentsOfFile: folder + "/sparsity.csv", encoding: .utf8)
        for name in ["patch_embed", "blocks.0.attn.q", "blocks.0.attn.k", "blocks.0.attn.v", "blocks.0.attn.out",
                     "blocks.0.mlp.fc1", "blocks.0.mlp.fc2", "head"] {
            #expect(layers.contains("\n0,\(name),"), "\(name) is a sparse layer")
        }

        let trained = try TrainedRun(folder: folder)
        // Embeddings and norms are never masked; every Linear is.
        #expect(trained.sparse.layers.count == 8 && trained.sparse.layers.allSatisfy { $0.mask != nil })
        let export = try CondensedExport(model: "vit", trained: trained.model, sparse: trained.sparse)
        #expect(export.layers.count == 8)
        let dense = trained.evaluate()
        try export.install(into: trained.model)
        let condensed = trained.evaluate()
        let scale = dense.logits.map { abs($0) }.max()!
        #expect(zip(dense.logits, condensed.logits).map { abs($0 - $1) }.max()! / scale < 1e-4)
        #expect(condensed.result.accuracy == dense.result.accuracy)
    }

    @Test func vitOptionsAreValidated() {
        func problems(_ vit: String) -> [String] {
            do {
                _ = try ConfigLoader.load(yaml: "model: {name: vit, vit: {\(vit)}}")
                return []
            } catch let e as ConfigError { return e.problems } catch { return ["\(error)"] }
        }
        let p = problems("patch_size: 0, depth: 0, width: 30, heads: 4, mlp_ratio: 0, dropout: 1, attention_dropout: -0.1")
        for key in ["patch_size", "depth", "heads", "mlp_ratio", "dropout", "attention_dropout"] {
            #expect(p.contains { $0.hasPrefix("model.vit.\(key):") }, "\(key) in \(p)")
        }
        #expect(problems("layers: 3").first?.hasPrefix("model.vit.layers: unknown key 'layers'") == true)
        #expect(problems("width: 64, heads: 4").isEmpty)
    }
}
