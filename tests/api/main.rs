//! Integration tests: the real router on a real socket, real JWTs, a real JWKS server.

mod helpers;

mod cli;
mod credentials;
mod jwks;
mod leaks;
mod lifecycle;
mod limits;
mod openapi;
mod operations;
mod security;
mod token;
mod webhooks;
