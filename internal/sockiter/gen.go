package sockiter

// The objects and their Go loaders are committed: building picket needs no
// clang. scripts/gen-bpf regenerates them (Debian's clang and llvm, and
// libbpf-dev for bpf_helpers.h); TestGenerated checks that the committed
// ones are what the sources compile to. bpf2go is a tool of go.mod, at the
// version of the library that loads its output.
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel,bpfeb taskFile bpf/task_file.bpf.c
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel,bpfeb task bpf/task.bpf.c
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel,bpfeb taskFds bpf/task_fds.bpf.c
