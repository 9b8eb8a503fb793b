fn main() {
    eprintln!("qnetd: not implemented yet");
    std::process::exit(1);
}
