// Coordinator flags and run preparation; see run_config.h.
#include "coordinator/run_config.h"

#include <spdlog/spdlog.h>

#include "engine/cli/train_run.h"

namespace lanlm::coordinator {

void CoordinatorOptions::Register(FlagSet& flags) {
  engine::RegisterTrainFlags(flags, this);  // the same flags and wording as `lanlm train`
  flags.String("listen", &listen, "address to serve on, host:port (port 0 picks one)");
  flags.Int("min-workers", &min_workers, "lease no shard while fewer workers are connected", 1, 100000);
  flags.Int("lease-timeout-ms", &lease_timeout_ms, "a lease not committed within this many ms is re-issued", 1,
            int64_t{1} << 40);
  flags.Int("shards-per-lease", &shards_per_lease,
            "shards per lease, a power of two: the worker computes them and sends one pre-summed gradient "
            "(less upload per step; parameters stay bit-identical)",
            1, 64);
  flags.String("wire", &wire,
              "fp32 | bf16: how parameters and gradients travel (bf16 halves the bytes; master weights, "
              "optimizer and gradient sums stay fp32; bit-identical within a mode, not across modes)");
  flags.Int("relay-fanout", &relay_fanout,
            "peers each relaying worker (lanlm-worker --relay-listen) forwards a step's parameters to, so the "
            "coordinator's link carries one copy per step, not one per worker (1 = a chain, each link at full "
            "rate; 0 = the coordinator sends every copy)",
            0, 16);
  flags.Int("local-steps", &local_steps,
            "H > 0: low-communication rounds (DiLoCo): each lease block runs H inner AdamW steps on its own "
            "shards and returns its parameter change; one outer Nesterov step per round (0 = synchronous)",
            0, 100000);
  flags.Float("outer-lr", &outer_lr, "outer learning rate of --local-steps", 0.0, 10.0);
  flags.Float("outer-momentum", &outer_momentum, "outer Nesterov momentum of --local-steps", 0.0, 0.999999);
  flags.String("cluster-token-file", &cluster_token_file,
               "file holding the cluster token (or the environment variable LANLM_CLUSTER_TOKEN; never a flag)");
  security.Register(flags);
  flags.Int("threads", &threads, "threads of the coordinator's pool (optimizer); 0 = all cores", 0, 4096);
  flags.String("checkpoint-dir", &checkpoint_dir, "folder for checkpoints step-NNNNNNNN.safetensors (empty = none)");
  flags.Int("checkpoint-every", &checkpoint_every, "write a checkpoint every N steps (0 = at the end only)", 0,
            int64_t{1} << 40);
  flags.Bool("serve", &serve, "serve Generate + ClusterStatus from --checkpoint; no training");
  flags.String("checkpoint", &checkpoint, "checkpoint to serve (with --serve)");
}

StatusOr<RunSetup> PrepareRun(const CoordinatorOptions& options, const GivenFlags& given) {
  const engine::RoundFlags rounds{options.local_steps, options.outer_lr, options.outer_momentum};
  LANLM_ASSIGN_OR_RETURN(engine::TrainSpec spec, engine::PrepareTrainSpec(options, given, rounds));
  LANLM_ASSIGN_OR_RETURN(engine::Corpus corpus, engine::LoadTrainCorpus(options, spec));
  RunSetup setup;
  setup.train = std::move(spec.train);
  setup.tokenizer = std::move(spec.tokenizer);
  setup.state = std::move(spec.state);
  setup.corpus_tokens = static_cast<int64_t>(corpus.train.size() + corpus.validation.size());
  setup.corpus_hash = corpus.hash;
  setup.run_id = spec.run_id;
  if (spec.unchecked_table) {
    spdlog::warn("checkpoint {} predates tensor-table checksums: its tensor layout is not verified (the "
                 "checkpoints of this run will carry one)",
                 options.resume);
  }
  setup.train_tokens = std::move(corpus.train);
  setup.validation_tokens = std::move(corpus.validation);
  return setup;
}

}  // namespace lanlm::coordinator
