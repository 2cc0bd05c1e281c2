/* SPDX-License-Identifier: GPL-2.0 */
/*
 * mock-accel: small guards for kernel APIs that changed between 5.14 and
 * 6.18.  Keep every guard here, with the version that changed it.
 */
#ifndef _MOCK_ACCEL_COMPAT_H
#define _MOCK_ACCEL_COMPAT_H

#include <linux/version.h>
#include <linux/random.h>
#include <linux/device.h>

/*
 * 6.2: class devnode() and dev_uevent() take a const struct device.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0)
#define MOCK_ACCEL_DEVNODE_CONST const
#else
#define MOCK_ACCEL_DEVNODE_CONST
#endif

/*
 * 6.2: class get_ownership() takes a const struct device too.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0)
#define MOCK_ACCEL_OWNERSHIP_CONST const
#else
#define MOCK_ACCEL_OWNERSHIP_CONST
#endif

/*
 * 6.3: bus attribute show/store callbacks take a const struct bus_type.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
#define MOCK_ACCEL_BUS_CONST const
#else
#define MOCK_ACCEL_BUS_CONST
#endif

/*
 * 6.11: pcim_request_region(), a region released when the driver unbinds.
 * Before, pci_request_region() after pcim_enable_device() is managed the
 * same way (the "hybrid" devres of those kernels, removed later).
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 11, 0)
#define mock_accel_pcim_request_region	pcim_request_region
#else
#define mock_accel_pcim_request_region	pci_request_region
#endif

/*
 * 6.2 (backported to some stable series): get_random_u32_below(), a
 * CSPRNG number in [0, ceil) without modulo bias.  Kbuild greps the
 * kernel headers and defines HAVE_GET_RANDOM_U32_BELOW when it exists;
 * otherwise do the same rejection sampling over get_random_u32().
 */
#ifdef HAVE_GET_RANDOM_U32_BELOW
static inline u32 mock_accel_random_below(u32 ceil)
{
	return get_random_u32_below(ceil);
}
#else
static inline u32 mock_accel_random_below(u32 ceil)
{
	/* values >= limit would make the low ones more likely */
	u32 limit = U32_MAX - (U32_MAX % ceil);
	u32 r;

	if (ceil <= 1)
		return 0;
	do {
		r = get_random_u32();
	} while (r >= limit);
	return r % ceil;
}
#endif

#endif /* _MOCK_ACCEL_COMPAT_H */
