// The engine's `Communicator` over MPI (Open MPI, through the C shim CMPI). Functional in a build with the package
// trait MPI (`swift build -c release --traits MPI`); without it `MPICommunicator.isBuiltIn` is false and
// `start()` explains how to build it.
import CMPI
import ClassicCNNEngine
import Foundation

public struct MPIError: Error, CustomStringConvertible {
    public let description: String
}

public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    /// The host MPI names for this rank.
    public let host: String
    /// A collective that has not completed after this many seconds stops every rank (MPI_Abort) with a message
    /// saying what it waited for: a rank that died or hangs never leaves the others waiting silently.
    public var timeoutSeconds: Double

    /// Whether this build links MPI (the package trait MPI).
    public static var isBuiltIn: Bool { cnn_mpi_built_in() == 1 }

    /// Whether the process was started by an MPI launcher (mpirun, srun): Open MPI's, PMIx's or MPICH's variables.
    public static var isLaunchedByMPI: Bool {
        let environment = ProcessInfo.processInfo.environment
        return ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"].contains { environment[$0] != nil }
    }

    /// Joins the MPI job (MPI_Init_thread). Call once, from the thread that will train.
    public static func start(timeoutSeconds: Double = 300) throws -> MPICommunicator {
        guard isBuiltIn else {
            throw MPIError(description: "this cnn was built without MPI; build it with `swift build -c release --traits MPI` "
                + "(Open MPI from Debian: apt-get install libopenmpi-dev openmpi-bin)")
        }
        guard cnn_mpi_init() == 0 else { throw MPIError(description: "MPI_Init_thread failed") }
        return MPICommunicator(rank: Int(cnn_mpi_rank()), size: Int(cnn_mpi_size()), host: String(cString: cnn_mpi_processor_name()),
                               timeoutSeconds: timeoutSeconds)
    }

    private init(rank: Int, size: Int, host: String, timeoutSeconds: Double) {
        (self.rank, self.size, self.host, self.timeoutSeconds) = (rank, size, host, timeoutSeconds)
    }

    /// What each pending request is for, and its collective's number, to name it if it never completes.
    private var pending: [Int: (what: String, number: Int)] = [:]
    /// The collectives joined so far; each is announced to rank 0 (and rank 0's to every rank) before it starts, so
    /// that a time-out can name the rank that never came.
    private var collectives = 0

    private func announce() -> Int {
        collectives += 1
        cnn_mpi_heartbeat(collectives)
        return collectives
    }

    public func startSum(_ buffer: UnsafeMutablePointer<Float>, count: Int, what: String) -> Int {
        let number = announce()
        let request = Int(cnn_mpi_start_sum_float(buffer, count))
        if request < 0 { fail("could not start \(what) (\(count) floats)") }
        pending[request] = (what, number)
        return request
    }

    public func test(_ request: Int) -> Bool {
        let done = cnn_mpi_test(Int32(request))
        if done < 0 { fail("MPI_Test failed for \(pending[request]?.what ?? "a request")") }
        if done == 1 { pending[request] = nil }
        return done == 1
    }

    public func wait(_ request: Int) {
        let clock = ContinuousClock()
        var deadline = clock.now + .milliseconds(Int64(timeoutSeconds * 1000))
        var lastBeat = clock.now
        var spins = 0, extended = false
        while !test(request) {
            spins += 1
            // Spin briefly (a collective of a step is usually a few milliseconds), then yield the core.
            if spins > 1000 { usleep(50) }
            guard spins % 1000 == 0 else { continue }
            cnn_mpi_heartbeat_poll()
            let (what, number) = pending[request] ?? ("a collective", collectives)
            // While waiting, say every second that this rank is alive.
            if clock.now - lastBeat > .seconds(1) {
                cnn_mpi_heartbeat(number)
                lastBeat = clock.now
            }
            guard clock.now > deadline else { continue }
            // A rank that hangs stops sending heartbeats; the ones that wait send one a second. Rank 0 hears from
            // every rank, the others from rank 0.
            let silence = max(timeoutSeconds / 2, 2)
            let prefix = "no answer from the other ranks for \(Int(timeoutSeconds)) s in \(what) (collective \(number)): "
            let silent = (0..<size).filter { $0 != rank && (rank == 0 || $0 == 0) && cnn_mpi_heartbeat_age(Int32($0)) > silence }
            if !silent.isEmpty {
                let named = silent.map { "rank \($0) (silent for \(Int(cnn_mpi_heartbeat_age(Int32($0)))) s, last at collective "
                    + "\(max(cnn_mpi_heartbeat_seen(Int32($0)), 0)))" }
                fail(prefix + named.joined(separator: ", ") + (silent.count == 1 ? " has" : " have") + " died or hangs; "
                     + "--mpi-timeout sets this limit")
            }
            if rank == 0 {
                fail(prefix + "every rank is alive, but it does not complete (the network, or a rank stuck inside MPI); "
                     + "--mpi-timeout sets this limit")
            }
            // Rank 0 is alive: it hears from every rank and names the one that hangs; give it the time to.
            if !extended {
                extended = true
                deadline = clock.now + .seconds(10)
                continue
            }
            fail(prefix + "rank 0 is alive, so another rank died or hangs; --mpi-timeout sets this limit")
        }
    }

    public func sum(_ values: inout [Double], what: String) {
        let count = values.count
        let number = announce()
        values.withUnsafeMutableBufferPointer { buffer in
            let request = Int(cnn_mpi_start_sum_double(buffer.baseAddress, count))
            if request < 0 { fail("could not start \(what)") }
            pending[request] = (what, number)
            wait(request)
        }
    }

    public func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, from root: Int, what: String) {
        // MPI counts are ints: send a large buffer in parts of at most 1 GiB.
        var offset = 0
        while offset < bytes {
            let part = Swift.min(bytes - offset, 1 << 30)
            let number = announce()
            let request = Int(cnn_mpi_start_broadcast(buffer + offset, part, Int32(root)))
            if request < 0 { fail("could not start the broadcast of \(what)") }
            pending[request] = (what, number)
            wait(request)
            offset += part
        }
    }

    /// Prints the problem, naming this rank and host, and stops every rank of the job.
    public func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("\ncnn: rank \(rank) of \(size) (\(host)): \(message); stopping every rank\n".utf8))
        cnn_mpi_abort(75)
        exit(75)
    }

    /// Leaves the MPI job (MPI_Finalize); call once, at the end.
    public func finish() { cnn_mpi_finalize() }
}
