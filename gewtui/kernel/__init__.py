"""Kernel plane: bcc probes from bpf/*.c, the ring-buffer transport, decoding into L0
protobuf events, transactional sessions, bpffs ownership, scope filters and tc."""
