// Umbrella header of the singleton_lock client library.
#pragma once

#include "singleton_lock/duration.hpp"
#include "singleton_lock/elector.hpp"
#include "singleton_lock/errors.hpp"
#include "singleton_lock/timing.hpp"
