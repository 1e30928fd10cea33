//! Pod network sandboxes through CNI.
