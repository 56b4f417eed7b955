// `cnn train` under mpirun: data-parallel training over MPI (a build with the package trait MPI).
import ArgumentParser
import ClassicCNN
import ClassicCNNMPI
import Foundation

struct DistributedOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Under mpirun: the size of the gradient buckets summed over the ranks while backward runs, in MB "
        + "(PyTorch DDP's bucket_cap_mb).", valueName: "MB"))
    var bucketSizeMb: Double = 25
    @Option(help: ArgumentHelp("Under mpirun: stop every rank, saying what it waited for, when a collective has not completed after "
        + "this many seconds (a rank died or hangs).", valueName: "seconds"))
    var mpiTimeout: Double = 300
    @Flag(help: "Under mpirun: batch norm's statistics over the whole step's batch on all ranks (PyTorch's SyncBatchNorm), not each rank's own images.")
    var syncBatchNorm = false
    @Flag(help: "Under mpirun: start the gradients' sums only after backward (to measure what overlapping them saves).")
    var noOverlap = false

    func validate() throws {
        guard bucketSizeMb > 0 && bucketSizeMb.isFinite else { throw ValidationError("--bucket-size-mb must be positive, got \(bucketSizeMb)") }
        guard mpiTimeout > 0 && mpiTimeout.isFinite else { throw ValidationError("--mpi-timeout must be positive, got \(mpiTimeout)") }
    }

    /// The MPI job this process belongs to, when mpirun (or srun) started it; nil for a process on its own. Ranks
    /// other than 0 print nothing on standard output from here on (their errors still reach standard error).
    func joinIfLaunched() throws -> MPICommunicator? {
        guard MPICommunicator.isLaunchedByMPI else { return nil }
        let communicator: MPICommunicator
        do { communicator = try MPICommunicator.start(timeoutSeconds: mpiTimeout) } catch {
            throw CommandError(description: "started by mpirun, but \(error)")
        }
        if communicator.rank != 0 {
            fflush(stdout)
            let null = open("/dev/null", O_WRONLY)
            if null >= 0 { dup2(null, STDOUT_FILENO); close(null) }
        }
        return communicator
    }
}

extension MPICommunicator {
    /// Rank 0's file `path`, on every rank: rank 0 reads it and sends it; the others keep it in a temporary file
    /// (the checkpoint folder needs to exist only where rank 0 runs). Returns the path to read on this rank.
    func shareFile(_ path: String) throws -> String {
        var data = Data()
        var problem: String?
        if rank == 0 {
            do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch { problem = "\(path): \(error.localizedDescription)" }
        }
        var length = [Double(rank == 0 && problem == nil ? data.count : -1)]
        // A sum: every rank but 0 adds 0 (its -1 is replaced), so the total is rank 0's length.
        if rank != 0 { length[0] = 0 }
        sum(&length, what: "the size of \(path)")
        guard length[0] >= 0 else { throw CommandError(description: problem ?? "rank 0 could not read \(path)") }
        if rank != 0 { data = Data(count: Int(length[0])) }
        data.withUnsafeMutableBytes { bytes in
            if let base = bytes.baseAddress { broadcast(base, bytes: bytes.count, from: 0, what: path) }
        }
        if rank == 0 { return path }
        let copy = NSTemporaryDirectory() + "cnn-rank\(rank)-\(getpid())-" + URL(fileURLWithPath: path).lastPathComponent
        try data.write(to: URL(fileURLWithPath: copy))
        return copy
    }
}
