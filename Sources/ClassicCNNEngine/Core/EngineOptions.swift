// The engine's switches, as one value: how many threads the kernels use, the optimisations that `cnn bench` turns
// off to measure what they gain, and how layers made for a smaller input than their network's own adapt. The
// process has one set (`EngineOptions.process`, which `cnn --threads` sets at start-up); a task may run with its own
// (`EngineOptions.run`), which is how tests compare settings without changing what suites running beside them see.
import CNNKernels
import Foundation

public struct EngineOptions: Sendable, Equatable {
    /// Threads for the numeric kernels. Results are reproducible for a fixed count: work is split into contiguous
    /// chunks in a fixed order.
    public var threads: Int {
        didSet { threads = max(1, threads) }
    }
    /// Whether Winograd (F(4x4, 3x3) or F(2x2, 5x5)) may serve stride-1 3x3 and 5x5 convolutions; off, they are
    /// lowered to im2col + GEMM (`cnn bench --no-winograd`).
    public var winograd: Bool
    /// Whether new `Sequential`s fuse each ReLU into the layer before it (`cnn bench --no-fusion`). The values are the
    /// same either way.
    public var fusesActivations: Bool
    /// Whether new `Sequential`s fold each batch norm into the convolution before it at inference
    /// (`cnn bench --no-bn-folding`): the convolution then writes the normalised output itself, as ONNX Runtime and
    /// OpenVINO do. Training is unaffected; the values agree to rounding.
    public var foldsBatchNorm: Bool
    /// Whether quantised convolutions (`Model.quantize`) run in int8 at inference; off, they compute in float with
    /// their float weights (`cnn bench --no-int8`, and the comparison that `cnn quantize` prints).
    public var int8: Bool
    /// Whether layers take their gradient buffers from `GradientPool` and give them back once read, rather than each
    /// keeping its own (`cnn bench --no-gradient-pool`). The values are the same either way.
    public var poolsGradients: Bool
    /// Whether convolution and pooling layers made now pad as TensorFlow's "same" where their window would not fit
    /// the input, as Keras's applications do for inputs smaller than the network's own. Layers read it when they are
    /// made; `ModelDescriptor.make` sets it for inputs smaller than the network's own.
    public var adaptsWindowsToSmallInputs: Bool

    public init(threads: Int = ProcessInfo.processInfo.activeProcessorCount, winograd: Bool = true,
                fusesActivations: Bool = true, foldsBatchNorm: Bool = true, poolsGradients: Bool = true,
                adaptsWindowsToSmallInputs: Bool = false, int8: Bool = true) {
        self.int8 = int8
        self.threads = max(1, threads)
        self.winograd = winograd
        self.fusesActivations = fusesActivations
        self.foldsBatchNorm = foldsBatchNorm
        self.poolsGradients = poolsGradients
        self.adaptsWindowsToSmallInputs = adaptsWindowsToSmallInputs
    }

    /// The options in force: those of the innermost `run` of the current task, else the process's.
    public static var current: EngineOptions { scoped ?? process }

    /// The process's options, which every task uses unless it runs with its own. Set them at start-up, before any
    /// work: a change while layers run on other threads changes what those threads see mid-way.
    public static var process: EngineOptions {
        get { lock.lock(); defer { lock.unlock() }; return processOptions }
        set { lock.lock(); defer { lock.unlock() }; processOptions = newValue }
    }

    /// Runs `body` with these options in force for the current task and the tasks it starts, whatever the process's.
    public func run<Result>(_ body: () throws -> Result) rethrows -> Result {
        try EngineOptions.$scoped.withValue(self, operation: body)
    }

    /// The current options changed by `change`, in force while `body` runs.
    public static func with<Result>(_ change: (inout EngineOptions) -> Void, _ body: () throws -> Result) rethrows -> Result {
        var options = current
        change(&options)
        return try options.run(body)
    }

    @TaskLocal private static var scoped: EngineOptions?
    private static let lock = NSLock()
    nonisolated(unsafe) private static var processOptions = EngineOptions()
}

/// The instruction set the numeric kernels run with: the widest the CPU has, or a narrower one chosen to measure it
/// on a wider machine (the environment variable `CNN_ISA=avx2` or `portable`, `cnn bench --isa`).
public enum InstructionSet: String, CaseIterable, Sendable {
    case portable, avx2, avx512, neon

    init(_ isa: cnn_isa) {
        switch isa {
        case CNN_ISA_AVX2: self = .avx2
        case CNN_ISA_AVX512: self = .avx512
        case CNN_ISA_NEON: self = .neon
        default: self = .portable
        }
    }

    private var kernelValue: cnn_isa {
        switch self {
        case .portable: CNN_ISA_PORTABLE
        case .avx2: CNN_ISA_AVX2
        case .avx512: CNN_ISA_AVX512
        case .neon: CNN_ISA_NEON
        }
    }

    /// The widest this CPU has.
    public static var detected: InstructionSet { InstructionSet(cnn_isa_detected()) }
    /// The one in force.
    public static var active: InstructionSet { InstructionSet(cnn_isa_active()) }
    /// The int8 GEMM that the one in force runs: "avx512-vnni", "avx2" (AVX-512 without VNNI too) or "portable".
    public static var int8Kernel: String { String(cString: cnn_int8_kernel_name(cnn_isa_active())) }

    /// Runs the kernels with `isa`, or with the widest this CPU has if it has not `isa`; returns the one in force.
    /// For the whole process, from the next kernel call on.
    @discardableResult
    public static func select(_ isa: InstructionSet) -> InstructionSet {
        if isa == .neon || detected == .neon { return active }
        return InstructionSet(cnn_isa_select(isa.kernelValue))
    }
}
