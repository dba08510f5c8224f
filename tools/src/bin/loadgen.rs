//! `loadgen`: the load harness for chatd (see `chat_tools::loadgen`).

fn main() {
    std::process::exit(chat_tools::loadgen::main());
}
