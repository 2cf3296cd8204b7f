// Keeps airlock_test_support a real library while it has no other sources.
