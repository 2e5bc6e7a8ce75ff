"""Generated protobuf code for proto/gewyvern/v1 (do not edit; run `make proto`).

This is the contract between the kernel plane, the observation plane and the files on disk.
"""
