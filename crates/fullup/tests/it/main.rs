//! Integration tests of the `fullup` binary and of the wire format against real receivers.

mod admin;
mod bench;
mod cli_manage;
mod cli_sign;
mod crash_loop;
mod documented_receivers;
mod faulty_network;
mod hostile_api;
mod hostile_receivers;
mod hosts;
mod listen;
mod logs;
mod proxy;
mod quickstart;
mod seed_receivers;
mod serve;
mod support_faults;
mod support_hostile;
mod support_ingest;
mod support_receiver;
mod support_server;
