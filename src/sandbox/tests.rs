//! Tests of the sandbox server itself, over HTTP.
