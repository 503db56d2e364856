//! Test helpers shared by the workspace integration tests.
