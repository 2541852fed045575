// The subcommands of the `ftdist` executable. Each takes the arguments after its own name
// (argv[0] is the command's full name, e.g. "ftdist bench comm") and returns the exit code.
#pragma once

namespace ftdist::cli {

int bench_main(int argc, char** argv);       // ftdist bench <what>
int bench_comm_main(int argc, char** argv);  // ftdist bench comm
int bench_step_main(int argc, char** argv);  // ftdist bench step
int bench_load_main(int argc, char** argv);  // ftdist bench load
int plan_main(int argc, char** argv);        // ftdist plan
int models_main(int argc, char** argv);      // ftdist models
int gpus_main(int argc, char** argv);        // ftdist gpus
int eval_main(int argc, char** argv);        // ftdist eval
int export_main(int argc, char** argv);      // ftdist export
int train_main(int argc, char** argv);       // ftdist train
int prepare_data_main(int argc, char** argv);  // ftdist prepare-data
int report_main(int argc, char** argv);        // ftdist report

}  // namespace ftdist::cli
