/**
 * A deterministic, seeded simulation of raft clusters (network faults, partitions, crashes
 * that lose unsynced writes, snapshots, leadership transfers, membership changes) that checks
 * raft's safety properties on every step and liveness once the faults stop.
 *
 * @module
 */
export {
  runSimulation,
  SimFailure,
  type SimOptions,
  type SimProfile,
  type SimReport,
} from "./simulator.ts";
export { chainHash, commandOf, InvariantViolation, Oracle } from "./oracle.ts";
export { type DurableWal, type MachineState, SimDisk, type WalWrite } from "./sim_disk.ts";
export { type NetworkFaults, reliableNetwork, SimNetwork } from "./sim_network.ts";
