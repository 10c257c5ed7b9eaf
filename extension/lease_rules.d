extension/lease_rules.o: extension/lease_rules.cpp \
 extension/lease_rules.hpp
extension/lease_rules.hpp:
