/* The declaration only; libFuzzer (linked by -sanitize=fuzzer) defines it. */
