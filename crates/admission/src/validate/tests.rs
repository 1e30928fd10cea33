//! Placeholder (the lead added it to unblock the build); the real tests come with the rules.
