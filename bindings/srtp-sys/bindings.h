/* The libsrtp2 headers bindgen reads (build.rs allowlists srtp_* and SRTP_*). */
#include <srtp2/srtp.h>
