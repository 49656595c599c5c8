mod cli;
mod crash;
mod daemon;
mod prometheus;
mod rollout;
mod support;
