// sluice: the command line. Everything happens in service/.
#include "service/cli.h"

int main(int argc, char** argv) { return sluice::service::CliMain(argc, argv); }
