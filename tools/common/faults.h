// Fault handling of the programs (linked into every distrifuse executable): a clear one-line
// error instead of a crash or a hang.
//
//   df_tool_faults_init(prog, prefix)  SIGBUS handler: a memory-mapped model file that was
//       truncated or replaced while in use (reading its pages raises SIGBUS) prints
//       "<prefix><prog>: error: model file '<path>' was truncated or replaced while in use
//       (SIGBUS reading offset N)" (the file is found from the faulting address in
//       /proc/self/maps) and exits 1.
//   df_tool_watchdog_*  --rank-timeout S: a thread that ends the process with
//       "<prefix><prog>: error: no step finished for S s: another rank died or hangs
//       (--rank-timeout S)" and exit status 1 when no heartbeat came for S seconds while
//       armed (every rank arms it for its sampling loop: a rank that dies or hangs leaves the
//       others blocked in a collective; each of them reports and exits, so the job ends).
#ifndef DF_TOOLS_COMMON_FAULTS_H
#define DF_TOOLS_COMMON_FAULTS_H

// prog: the program name; prefix: e.g. "[r1/4] " or "" (copied).
void df_tool_faults_init(const char *prog, const char *prefix);

// Starts the watchdog thread (timeout_s > 0), disarmed. Returns 0, -1 if the thread failed.
int df_tool_watchdog_start(double timeout_s);
void df_tool_watchdog_arm(void);    // now counts as a heartbeat; the clock runs
void df_tool_watchdog_beat(void);   // a step finished
void df_tool_watchdog_disarm(void); // e.g. after the last step (the VAE runs on rank 0 only)

#endif // DF_TOOLS_COMMON_FAULTS_H
