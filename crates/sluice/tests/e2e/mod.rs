mod cli;
mod crash;
mod daemon;
mod prometheus;
mod release;
mod rollout;
mod support;
mod hooks;
