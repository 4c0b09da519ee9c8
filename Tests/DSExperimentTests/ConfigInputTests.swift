import DSExperiment
import DSTestSupport
import Foundation
import Testing

/// Bad config files get one clear message naming the file and the cause.
@Suite struct ConfigInputTests {
    func fileProblems(_ path: String) -> [String] {
        do {
            _ = try ConfigLoader.load(file: path)
            Issue.record("\(path) was accepted")
            return []
        } catch let e as ConfigError {
            #expect(e.source == path)
            return e.problems
        } catch {
            Issue.record("unexpected error \(error)")
            return []
        }
    }

    func write(_ text: String, _ name: String) throws -> String {
        let path = Fixtures.temporaryDirectory("cfg") + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func nonFiniteNumbersAreRefusedInFilesAndOverrides() throws {
        for (yaml, overrides, key) in [("optimizer: {lr: .inf}", [String](), "optimizer.lr"),
                                       ("optimizer: {betas: [.nan, 0.9]}", [], "optimizer.betas"),
                                       ("{}", ["optimizer.lr=.inf"], "optimizer.lr"),
                                       ("{}", ["schedule.gamma=-.inf"], "schedule.gamma")] {
            do {
                _ = try ConfigLoader.load(yaml: yaml, overrides: overrides)
                Issue.record("\(yaml) \(overrides) accepted")
            } catch let e as ConfigError {
                #expect(e.problems.contains { $0.hasPrefix(key) && $0.contains("finite number") }, "\(e.problems)")
            }
        }
    }

    @Test func unreadableFilesSayWhy() throws {
        let dir = Fixtures.temporaryDirectory("unreadable")
        #expect(fileProblems(dir + "/absent.yaml") == ["cannot read the config: no such file"])
        #expect(fileProblems(dir) == ["cannot read the config: is a directory, not a file"])
        let binary = dir + "/binary.yaml"
        _ = FileManager.default.createFile(atPath: binary, contents: Data("name: a\nseed: 1\nx: \u{e9}".utf8) + Data([0xff, 0x41]))
        let utf8 = fileProblems(binary)
        #expect(utf8.count == 1 && utf8[0].contains("not UTF-8") && utf8[0].contains("0xff at offset 21") && utf8[0].contains("line 3"),
                "\(utf8)")
    }

    @Test func duplicateKeysNameTheKeyAndBothLinesWithoutTheWholeFile() throws {
        let filler = (0..<2000).map { "# comment line \($0)" }.joined(separator: "\n")
        let path = try write("name: a\nmodel:\n  name: mlp\n  hidden: [3]\n  name: lenet5\n" + filler + "\n", "dup.yaml")
        let problems = fileProblems(path)
        #expect(problems.count == 1)
        let message = problems.first ?? ""
        #expect(message.contains("duplicate key 'name' at lines 3 and 5"), "\(message)")
        #expect(message.count < 400, "a short message, not the file: \(message.count) characters")
    }

    @Test func syntaxErrorsGiveTheLineAndAFewLinesOfContext() throws {
        let path = try write("name: a\nmodel: [a\n" + String(repeating: "x: 1\n", count: 500), "syntax.yaml")
        let message = fileProblems(path).first ?? ""
        #expect(message.hasPrefix("line ") && message.contains("YAML syntax error"), "\(message)")
        #expect(message.split(separator: "\n").count <= 4)
    }

    @Test func configsAboveTheSizeLimitAreRefused() throws {
        let path = try write("model:\n  hidden: [" + Array(repeating: "1", count: ConfigLoader.maximumFileSize / 2).joined(separator: ",") + "]\n",
                             "huge.yaml")
        let message = fileProblems(path).first ?? ""
        #expect(message.contains("configs are limited to \(ConfigLoader.maximumFileSize) bytes"), "\(message)")
    }

    /// Decoding and rendering are linear in a list's length: 100,000 entries load in a
    /// few seconds even in a debug build (quadratic rendering took minutes at 40,000).
    @Test(.timeLimit(.minutes(1))) func longListsLoadInLinearTime() throws {
        let count = 100_000
        let config = try ConfigLoader.load(yaml: "model: {hidden: [" + Array(repeating: "7", count: count).joined(separator: ",") + "]}")
        #expect(config.model.hidden.count == count)
        let rendered = ConfigLoader.render(config)
        #expect(rendered.components(separatedBy: "\n  - 7").count == count + 1)
        #expect(try ConfigLoader.load(yaml: rendered) == config)
    }

    @Test func emptyFilesAndSectionsAreNoted() throws {
        let empty = try ConfigLoader.loadWithNotes(yaml: "", source: "e.yaml")
        #expect(empty.config == ExperimentConfig())
        #expect(empty.notes == ["e.yaml sets no keys: every value is a default (`dst validate` prints them)"])
        let section = try ConfigLoader.loadWithNotes(yaml: "name: x\ntraining: ~\n", source: "s.yaml")
        #expect(section.notes == ["s.yaml: section 'training' is empty; all its defaults apply"])
        #expect(try ConfigLoader.loadWithNotes(yaml: "name: x\n").notes.isEmpty)
    }
}
