mod cli;
mod crash;
mod daemon;
mod rollout;
mod support;
